"""The Lua scripts the Redis store runs, loaded from ``lua/``."""

from __future__ import annotations

from importlib import resources

SESSION_SCRIPTS = (
    "check", "create", "end", "end_user", "list_user", "rotate", "set_tails", "set_user_timeouts",
    "touch",
)
#: scripts without the prelude: the shared state, and the audit log's self-service allowance
STANDALONE_SCRIPTS = ("state", "audit")
#: The scripts whose change the caller is told about (a login, a sign-out, a
#: revocation, a new token, new roles, a sign-out of everyone, a policy or timeout
#: change): on Sentinel they wait for a replica (:mod:`.failover`). A check's touch,
#: a listing's pruning and a write-back of uses do not: losing one ends a session
#: early at most.
#: (The state script too, when it changes the state: ``Script.durable``.)
DURABLE = frozenset({"create", "end", "end_user", "rotate", "set_tails", "set_user_timeouts"})


def script_sources() -> dict[str, str]:
    """The Lua scripts by name; session scripts get the ``rules.lua`` prelude."""
    folder = resources.files("sessionguard.stores.redis") / "lua"
    rules = (folder / "rules.lua").read_text(encoding="utf-8")
    sources = {name: rules + (folder / f"{name}.lua").read_text(encoding="utf-8")
               for name in SESSION_SCRIPTS}
    for name in STANDALONE_SCRIPTS:
        sources[name] = (folder / f"{name}.lua").read_text(encoding="utf-8")
    return sources
