"""The Lua scripts the Redis store runs, loaded from ``lua/``."""

from __future__ import annotations

from importlib import resources

SESSION_SCRIPTS = (
    "check", "create", "end", "end_user", "list_user", "rotate", "set_tails", "set_user_timeouts",
    "touch", "bind", "redeem",
)
#: scripts without the prelude: the shared state, and the audit log's self-service allowance
STANDALONE_SCRIPTS = ("state", "audit")


def script_sources() -> dict[str, str]:
    """The Lua scripts by name; session scripts get the ``rules.lua`` prelude."""
    folder = resources.files("sessionguard.stores.redis") / "lua"
    rules = (folder / "rules.lua").read_text(encoding="utf-8")
    sources = {name: rules + (folder / f"{name}.lua").read_text(encoding="utf-8")
               for name in SESSION_SCRIPTS}
    for name in STANDALONE_SCRIPTS:
        sources[name] = (folder / f"{name}.lua").read_text(encoding="utf-8")
    return sources
