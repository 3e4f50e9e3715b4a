"""What each ``sessionguard`` command does (:mod:`sessionguard.cli` parses the
command line and maps errors to exit codes)."""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import json
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from datetime import datetime

from . import audit
from .config import Config, format_duration
from .guard import SessionGuard
from .policy import Policy
from .reasons import listed_text
from .session import Session, listed
from .tokens import is_session_id

#: The phrase ``signout --all`` must be confirmed with (as in the admin API).
CONFIRM_PHRASE = "SIGN OUT ALL"
PROG = "sessionguard"
_PAGE = 100  # sessions fetched per store call
_WIDE = 40  # longest cell shown before it is cut


class UsageError(Exception):
    """Bad arguments or a setting the command cannot work with (exit 2)."""


class NotFound(Exception):
    """The named session does not exist (exit 1)."""


# -- output helpers ------------------------------------------------------------


def _clean(value: object, *, width: int | None = _WIDE) -> str:
    """``value`` as one printable line: control characters escaped, cut to ``width``."""
    text = "-" if value is None else str(value)
    text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    if width is not None and len(text) > width:
        text = text[: width - 3] + "..."
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with left-aligned columns."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def _when(moment: datetime | None) -> str:
    return "never" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def policy_table(policy: Policy) -> str:
    """The policy of SPEC §5 as a table, from :meth:`Policy.to_json`."""
    data = policy.to_json()
    rows = [
        [p, v["idle_timeout"], v["absolute_timeout"], v["session_timeout"],
         "unlimited" if v["max_sessions"] is None else str(v["max_sessions"])]
        for p, v in data["platforms"].items()
    ]
    return table(["platform", "idle timeout", "absolute timeout", "session timeout", "max sessions"], rows)


# -- commands ------------------------------------------------------------------


def _shared_guard(platform: str | None = None) -> SessionGuard:
    """A guard on the configured store, refusing ``memory://``: the command
    line runs in its own process and could never see the app's sessions; and
    refusing a ``platform`` (``--platform``) that is not configured."""
    config = Config.from_env()
    _platform(config, platform)
    if config.store_url.startswith("memory:"):
        raise UsageError(
            "SESSIONGUARD_STORE_URL=memory:// keeps sessions inside the app's own process, so the"
            " command line cannot see or end them; set SESSIONGUARD_STORE_URL to the app's Redis"
        )
    return SessionGuard(config)


def _platform(config: Config, platform: str | None) -> None:
    """Refuse a ``--platform`` that is none of the configured kinds (``PLATFORMS``)."""
    if platform is not None and platform not in config.platforms:
        raise UsageError(f"--platform must be one of {', '.join(config.platforms)}"
                         f" (SESSIONGUARD_PLATFORMS), not {_clean(platform)}")


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the configuration and the store connection; print the policy."""
    config = Config.from_env()
    memory = config.store_url.startswith("memory:")
    if memory:
        # The store's own start-up warning would only repeat what we print below.
        logging.getLogger("sessionguard").setLevel(logging.ERROR)
    guard = SessionGuard(config)  # opens and checks GEOIP_DATABASE: a bad one is a ConfigurationError
    geoip = None if guard.geoip is None else f"{guard.geoip.path} ({guard.geoip.kind})"
    try:
        policy = guard.store.policy()
        guard.store.list_sessions(user_id=None, platform=None, limit=1, cursor=None)
    finally:
        guard.close()
    stored = policy != guard.default_policy
    if args.json:
        print(json.dumps({
            "ok": True, "store": config.redacted_store_url, "key_prefix": config.key_prefix,
            "policy": policy.to_json(), "policy_source": "stored" if stored else "environment",
            "geoip_database": geoip,
        }, indent=2))
        return 0
    note = " (this process only: use Redis to share sessions)" if memory else " (reachable)"
    rows = [
        ("configuration", "valid"),
        ("store", config.redacted_store_url + note),
        ("key prefix", config.key_prefix),
        ("policy", "stored through the admin API (overrides the environment)" if stored
         else "from the environment"),
    ]
    for name, value in rows:
        print(f"{name:<20}{_clean(value, width=None)}")
    print()
    print(policy_table(policy))
    print()
    user_timeouts = "allowed" if policy.allow_user_timeouts else "not allowed"
    for name, value in (
        ("remember-me period", format_duration(policy.remember_me_period)),
        ("max sessions total", "unlimited" if policy.max_sessions_total is None
         else str(policy.max_sessions_total)),
        ("on limit", f"{policy.on_limit} (ends {policy.evict.replace('_', ' ')} first)"
         if policy.on_limit == "evict_oldest" else policy.on_limit),
        ("user timeouts", user_timeouts),
        ("cookie", f"{config.cookie_name} (Secure={str(config.cookie_secure).lower()},"
                   f" SameSite={config.cookie_samesite.capitalize()}, Path={config.cookie_path})"),
        ("admin path", config.admin_path or "off"),
        ("geoip database", geoip or "not configured"),
    ):
        print(f"{name:<20}{_clean(value, width=None)}")
    if not config.cookie_secure:
        print("\nwarning: SESSIONGUARD_COOKIE_SECURE=false sends the session cookie over plain HTTP;"
               " use it only for local development")
    return 0


def cmd_sessions(args: argparse.Namespace) -> int:
    """List sessions of a status (active, recently ended, all), newest login first."""
    guard = _shared_guard(args.platform)
    try:
        policy = guard.store.policy()
        sessions: list[Session] = []
        cursor: str | None = None
        while len(sessions) < args.limit:
            page = guard.store.list_sessions(
                user_id=args.user, platform=args.platform,
                limit=min(_PAGE, args.limit - len(sessions)), cursor=cursor, status=args.status,
            )
            sessions.extend(listed(item, policy) for item in page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        more = cursor is not None
    finally:
        guard.store.close()
    if args.json:
        print(json.dumps({"sessions": [s.to_json() for s in sessions], "more": more}, indent=2))
        return 0
    if not sessions:
        print({"active": "no active sessions", "ended": "no sessions ended in the last 24 hours",
               "all": "no sessions"}[args.status])
        return 0
    ended = args.status != "active"
    rows = [
        [s.id, _clean(s.user_id), s.platform, _clean(s.device), _clean(s.ip, width=None),
         _clean(s.city), _when(s.created_at), _when(s.last_seen_at), _when(s.expires_at), s.status,
         *([_because(s.ended_reason)] if ended else [])]
        for s in sessions
    ]
    headers = ["id", "user", "platform", "device", "ip", "city", "login (UTC)", "last seen (UTC)",
               "expires / ended (UTC)" if ended else "expires (UTC)", "status",
               *(["ended because"] if ended else [])]
    print(table(headers, rows))
    count = f"{len(sessions)} session{'s' if len(sessions) != 1 else ''}"
    print(f"\n{count}" + (f" shown; more exist (raise --limit above {args.limit})" if more else ""))
    return 0


def _because(reason: str | None) -> str:
    """A listed session's ending in words, and its ``ended_reason``."""
    return "" if reason is None else f"{listed_text(reason)} ({reason})"


def cmd_sweep(args: argparse.Namespace) -> int:
    """Record the endings of sessions that timed out unnoticed (each app process
    does so within a minute by itself); print how many it recorded."""
    guard = _shared_guard()
    try:
        recorded = guard.sweep()
    finally:
        guard.store.close()
    print(f"recorded {recorded} ending{'' if recorded == 1 else 's'}")
    return 0


def cmd_signout(args: argparse.Namespace) -> int:
    """End one session, one user's sessions, or everyone's."""
    if args.platform is not None and args.user is None:
        raise UsageError("--platform only applies to --user")
    if args.confirm is not None and not args.all:
        raise UsageError("--confirm only applies to --all")
    if args.all and args.confirm is None:
        raise UsageError(f'--all ends every session of every user; confirm with --confirm "{CONFIRM_PHRASE}"')
    if args.all and args.confirm != CONFIRM_PHRASE:
        raise UsageError(f'--confirm must be exactly "{CONFIRM_PHRASE}"; nothing was signed out')
    guard = _shared_guard(args.platform)
    store = guard.store
    try:
        if args.session is not None:
            record = store.end(args.session, "revoked") if is_session_id(args.session) else None
            if record is None:
                raise NotFound(f"no such session: {_clean(args.session)}")
            guard.record([audit.ended(record, "revoked", "cli", store.now())])
            print(f"signed out session {record.id} of user {_clean(record.user_id)} ({record.platform})")
        elif args.user is not None:
            records = store.end_user(args.user, "revoked", platform=args.platform)
            now = store.now()
            guard.record([audit.ended(r, "revoked", "cli", now) for r in records])
            where = f" on {args.platform}" if args.platform else ""
            plural = "" if len(records) == 1 else "s"
            print(f"signed out {len(records)} session{plural} of user {_clean(args.user)}{where}")
        else:
            store.end_all()
            guard.record([audit.Event("signout_all", store.now(), "cli", reason="signout_all")])
            print("signed out everyone: every session of every user has ended")
    finally:
        store.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo app (:mod:`sessionguard.demo`) with uvicorn and the memory store."""
    try:
        import uvicorn

        from .demo import create_app  # a Starlette app
    except ModuleNotFoundError as exc:
        if exc.name not in ("uvicorn", "starlette"):
            raise
        raise UsageError("the demo needs its extra: pip install 'sessionguard-middleware[demo]'") from None

    # The demo always keeps sessions in memory and serves plain HTTP, whatever
    # the environment says; policy variables (MAX_SESSIONS, ...) still apply.
    environ = {**os.environ, "SESSIONGUARD_STORE_URL": "memory://", "SESSIONGUARD_COOKIE_SECURE": "false"}
    if not environ.get("SESSIONGUARD_SECRET_KEY", "").strip():
        environ["SESSIONGUARD_SECRET_KEY"] = secrets.token_urlsafe(48)
    logging.getLogger("sessionguard").setLevel(logging.ERROR)  # memory:// is the point here
    # uvicorn speaks websockets only with one of these installed.
    live = any(importlib.util.find_spec(name) is not None for name in ("websockets", "wsproto"))
    if not live:
        print("note: the live websocket panel is off (pip install websockets to try it)", file=sys.stderr)
    if not _loopback(args.host):
        print(
            f"WARNING: the demo listens on {args.host}: anyone who can reach it can sign in as any user,"
            " administrator included (it has no passwords, and its admin pages can sign everyone out)."
            " Use --host 127.0.0.1 unless every machine on that network is yours.",
            file=sys.stderr, flush=True,
        )
    app = create_app(SessionGuard.from_env(environ), live=live)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"sessionguard demo on http://{host}:{args.port}/ (sessions kept in memory; Ctrl+C stops)",
          flush=True)
    # proxy_headers=False: sessionguard decides whom to believe (TRUSTED_PROXIES).
    uvicorn.run(app, host=args.host, port=args.port, proxy_headers=False, log_level="info")
    return 0


def _loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that may resolve to any address


# -- argument parsing ------------------------------------------------------------
