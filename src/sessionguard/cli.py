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
import io
import logging
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .commands import (
    CONFIRM_PHRASE,
    PROG,
    NotFound,
    UsageError,
    cmd_check,
    cmd_demo,
    cmd_sessions,
    cmd_signout,
    cmd_sweep,
    error,
)
from .config import PLATFORMS, Config
from .errors import ConfigurationError, StoreUnavailable
from .stores.protocol import STATUSES


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
        "sessions", help="list active or recently ended sessions",
        description="List sessions, newest login first: active ones (the default), those ended in"
        " the last 24 hours with why and when (--status ended), or both (--status all).",
    )
    sessions.add_argument("--status", choices=STATUSES, default="active",
                          help="active (default), ended (in the last 24 hours) or all")
    sessions.add_argument("--user", metavar="ID", help="only this user's sessions")
    sessions.add_argument("--platform", metavar="NAME",
                          help=f"only this platform's sessions ({', '.join(PLATFORMS)} or one of PLATFORMS)")
    sessions.add_argument("--limit", type=_limit, default=100, metavar="N",
                          help="show at most N sessions (default: 100)")
    sessions.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sessions.set_defaults(run=cmd_sessions)

    sweep = commands.add_parser(
        "sweep", help="record the endings of sessions that timed out unnoticed",
        description="Record now, once each, the audit event of every session that timed out and was"
        " not presented since (every app process does so within a minute by itself); print how"
        " many endings were recorded.",
    )
    sweep.set_defaults(run=cmd_sweep)

    signout = commands.add_parser(
        "signout", help="sign out one session, one user, or everyone",
        description="End sessions. One session or one user: reason 'revoked'; everyone:"
        " 'signout_all'. Every ending is recorded in the audit log with actor 'cli'.",
    )
    which = signout.add_mutually_exclusive_group(required=True)
    which.add_argument("--session", metavar="ID", help="end the session with this id")
    which.add_argument("--user", metavar="ID", help="end every session of this user")
    which.add_argument("--all", action="store_true", help="end every session of every user")
    signout.add_argument("--platform", metavar="NAME", help="with --user: only this platform")
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
        error("invalid configuration:\n  " + "\n  ".join(exc.errors))
        return 2
    except UsageError as exc:
        error(str(exc))
        return 2
    except NotFound as exc:
        error(str(exc))
        return 1
    except StoreUnavailable as exc:
        error(f"the session store is unavailable ({_store_url()}): {exc}")
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
