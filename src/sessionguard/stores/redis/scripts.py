"""The Lua scripts the Redis store runs, loaded from ``lua/``."""

from __future__ import annotations

import functools
import hashlib
import re
from importlib import resources

SESSION_SCRIPTS = ("check", "create", "end", "end_user", "list_user", "set_user_timeouts", "touch")
#: The scripts whose change the caller is told about (a login, a sign-out, a
#: revocation, a sign-out of everyone, a policy or timeout change): on Sentinel
#: they wait for a replica (:mod:`.failover`). A check's touch, a listing's
#: pruning and a write-back of uses do not: losing one ends a session early at most.
DURABLE = frozenset({"create", "end", "end_user", "set_user_timeouts", "state"})


def script_sources() -> dict[str, str]:
    """The Lua scripts by name; session scripts get the ``rules.lua`` prelude."""
    folder = resources.files("sessionguard.stores.redis") / "lua"
    rules = (folder / "rules.lua").read_text(encoding="utf-8")
    sources = {name: rules + (folder / f"{name}.lua").read_text(encoding="utf-8")
               for name in SESSION_SCRIPTS}
    sources["state"] = (folder / "state.lua").read_text(encoding="utf-8")
    return sources


#: Where Redis says a script failed: its SHA-1 and the line (``@user_script:N``).
_WHERE = re.compile(r"script: ([0-9a-f]{40}), on @user_script:(\d+)")
_CALL = re.compile(r"redis\.p?call\(\s*['\"](\w+)['\"]")


@functools.cache
def _by_sha() -> dict[str, tuple[str, list[str]]]:
    return {hashlib.sha1(source.encode()).hexdigest(): (name, source.splitlines())
            for name, source in script_sources().items()}


def failed_command(message: str) -> str | None:
    """The command at the line of one of these scripts that an error reply
    names (``... script: <sha>, on @user_script:<line>``), as ``"TIME in
    check"``; ``None`` when it names none. Redis does not say which command an
    ACL refused inside a script ("can't run this command or subcommand"); the
    line does."""
    where = _WHERE.search(message)
    found = None if where is None else _by_sha().get(where[1])
    if where is None or found is None:
        return None
    name, lines = found
    line = int(where[2]) - 1
    call = _CALL.search(lines[line]) if 0 <= line < len(lines) else None
    return None if call is None else f"{call[1].upper()} in {name}"
