"""The ``sessionguard`` command line (SPEC §6), configured by the same
``SESSIONGUARD_*`` variables as the middleware.

Exit codes: ``0`` success, ``1`` the store is unreachable or the named
session does not exist, ``2`` bad usage or configuration, ``130``
interrupted. Expected errors print one clear message, never a traceback.
Every value that came from a client (user ids, devices, cities) is escaped
before it reaches the terminal, so a hostile user agent cannot move the
cursor or hide rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

from . import __version__, audit
from .config import PLATFORMS, Config, format_duration
from .errors import ConfigurationError, StoreUnavailable
from .guard import SessionGuard
from .policy import Policy
from .session import Session
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


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def policy_table(policy: Policy) -> str:
    """The policy of SPEC §5 as a table, from :meth:`Policy.to_json`."""
    data = policy.to_json()
    rows = [
        [p, data["platforms"][p]["idle_timeout"], data["platforms"][p]["absolute_timeout"],
         "unlimited" if data["platforms"][p]["max_sessions"] is None
         else str(data["platforms"][p]["max_sessions"])]
        for p in PLATFORMS
    ]
    return table(["platform", "idle timeout", "absolute timeout", "max sessions"], rows)


# -- commands ------------------------------------------------------------------


def _shared_guard() -> SessionGuard:
    """A guard on the configured store, refusing ``memory://``: the command
    line runs in its own process and could never see the app's sessions."""
    config = Config.from_env()
    if config.store_url.startswith("memory:"):
        raise UsageError(
            "SESSIONGUARD_STORE_URL=memory:// keeps sessions inside the app's own process, so the"
            " command line cannot see or end them; set SESSIONGUARD_STORE_URL to the app's Redis"
        )
    return SessionGuard(config)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the configuration and the store connection; print the policy."""
    config = Config.from_env()
    memory = config.store_url.startswith("memory:")
    if memory:
        # The store's own start-up warning would only repeat what we print below.
        logging.getLogger("sessionguard").setLevel(logging.ERROR)
    guard = SessionGuard(config)
    try:
        policy = guard.store.policy()
        guard.store.list_sessions(user_id=None, platform=None, limit=1, cursor=None)
    finally:
        guard.store.close()
    geoip = _geoip_status(config)
    stored = policy != guard.default_policy
    if args.json:
        print(json.dumps({
            "ok": geoip[0], "store": config.redacted_store_url, "key_prefix": config.key_prefix,
            "policy": policy.to_json(), "policy_source": "stored" if stored else "environment",
            "geoip_database": geoip[1],
        }, indent=2))
        return 0 if geoip[0] else 1
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
        ("on limit", f"{policy.on_limit} (ends {policy.evict.replace('_', ' ')} first)"
         if policy.on_limit == "evict_oldest" else policy.on_limit),
        ("user timeouts", user_timeouts),
        ("cookie", f"{config.cookie_name} (Secure={str(config.cookie_secure).lower()},"
                   f" SameSite={config.cookie_samesite.capitalize()}, Path={config.cookie_path})"),
        ("admin path", config.admin_path or "off"),
        ("geoip database", geoip[1] or "not configured"),
    ):
        print(f"{name:<20}{_clean(value, width=None)}")
    if not config.cookie_secure:
        print("\nwarning: SESSIONGUARD_COOKIE_SECURE=false sends the session cookie over plain HTTP;"
               " use it only for local development")
    if not geoip[0]:
        _error(f"SESSIONGUARD_GEOIP_DATABASE: {geoip[1]}")
        return 1
    return 0


def _geoip_status(config: Config) -> tuple[bool, str | None]:
    """Whether the GeoIP database opens as a City database, and a description."""
    path = config.geoip_database
    if path is None:
        return True, None
    import geoip2.database
    import maxminddb

    try:
        with geoip2.database.Reader(path) as reader:
            kind: str = reader.metadata().database_type
    except (OSError, maxminddb.InvalidDatabaseError, ValueError) as exc:
        return False, f"{path!r} cannot be read as a GeoIP2 database ({type(exc).__name__})"
    if "City" not in kind:
        return False, f"{path!r} is a {kind} database, not a City database"
    return True, f"{path} ({kind})"


def cmd_sessions(args: argparse.Namespace) -> int:
    """List active sessions, newest login first."""
    guard = _shared_guard()
    try:
        policy = guard.store.policy()
        sessions: list[Session] = []
        cursor: str | None = None
        while len(sessions) < args.limit:
            page = guard.store.list_sessions(
                user_id=args.user, platform=args.platform,
                limit=min(_PAGE, args.limit - len(sessions)), cursor=cursor,
            )
            sessions.extend(Session.from_record(record, policy) for record in page.items)
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
        print("no active sessions")
        return 0
    rows = [
        [s.id, _clean(s.user_id), s.platform, _clean(s.device), _clean(s.ip, width=None),
         _clean(s.city), _when(s.created_at), _when(s.last_seen_at), _when(s.expires_at)]
        for s in sessions
    ]
    headers = ["id", "user", "platform", "device", "ip", "city", "login (UTC)", "last seen (UTC)",
               "expires (UTC)"]
    print(table(headers, rows))
    count = f"{len(sessions)} session{'s' if len(sessions) != 1 else ''}"
    print(f"\n{count}" + (f" shown; more exist (raise --limit above {args.limit})" if more else ""))
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
    guard = _shared_guard()
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
    except ImportError:
        raise UsageError("the demo needs uvicorn: pip install uvicorn websockets") from None
    from .demo import create_app

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
    app = create_app(SessionGuard.from_env(environ), live=live)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"sessionguard demo on http://{host}:{args.port}/ (sessions kept in memory; Ctrl+C stops)",
          flush=True)
    # proxy_headers=False: sessionguard decides whom to believe (TRUSTED_PROXIES).
    uvicorn.run(app, host=args.host, port=args.port, proxy_headers=False, log_level="info")
    return 0


# -- argument parsing ------------------------------------------------------------


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (use 1 to 65535)")
    return int(text)


def _limit(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return int(text)


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sessionguard`` command."""
    top = argparse.ArgumentParser(
        prog=PROG,
        description="Inspect and manage sessionguard sessions. Configured by the same"
        " SESSIONGUARD_* environment variables as the middleware.",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser(
        "check", help="validate the configuration and the store connection; print the policy",
        description="Validate the configuration and the store connection, and print the effective"
        " policy.",
    )
    check.add_argument("--json", action="store_true", help="print JSON instead of tables")
    check.set_defaults(run=cmd_check)

    sessions = commands.add_parser(
        "sessions", help="list active sessions", description="List active sessions, newest login first.",
    )
    sessions.add_argument("--user", metavar="ID", help="only this user's sessions")
    sessions.add_argument("--platform", choices=PLATFORMS, help="only this platform's sessions")
    sessions.add_argument("--limit", type=_limit, default=100, metavar="N",
                          help="show at most N sessions (default: 100)")
    sessions.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sessions.set_defaults(run=cmd_sessions)

    signout = commands.add_parser(
        "signout", help="sign out one session, one user, or everyone",
        description="End sessions. One session or one user: reason 'revoked'; everyone:"
        " 'signout_all'. Every ending is recorded in the audit log with actor 'cli'.",
    )
    which = signout.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", metavar="ID", help="end the session with this id")
    which.add_argument("--user", metavar="ID", help="end every session of this user")
    which.add_argument("--all", action="store_true", help="end every session of every user")
    signout.add_argument("--platform", choices=PLATFORMS, help="with --user: only this platform")
    signout.add_argument("--confirm", metavar="PHRASE",
                         help=f'with --all: the phrase "{CONFIRM_PHRASE}", typed exactly')
    signout.set_defaults(run=cmd_signout)

    demo = commands.add_parser(
        "demo", help="run the demo app with the in-memory store",
        description="Run the demo app (a Starlette site with login, logout and a websocket) with"
        " the in-memory store over plain HTTP. SESSIONGUARD_* policy variables apply; the secret"
        " key is random unless SESSIONGUARD_SECRET_KEY is set.",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    demo.add_argument("--port", type=_port, default=8000, help="port to listen on (default: 8000)")
    demo.set_defaults(run=cmd_demo)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")  # a city name never crashes a C locale
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    args = parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except ConfigurationError as exc:
        _error("invalid configuration:\n  " + "\n  ".join(exc.errors))
        return 2
    except UsageError as exc:
        _error(str(exc))
        return 2
    except NotFound as exc:
        _error(str(exc))
        return 1
    except StoreUnavailable as exc:
        _error(f"the session store is unavailable ({_store_url()}): {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``sessionguard sessions | head``): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _store_url() -> str:
    try:
        return Config.from_env().redacted_store_url
    except ConfigurationError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
