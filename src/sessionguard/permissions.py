"""The admin permissions (SPEC §5) and which roles hold them (SPEC §9.4).

A session's roles are ``metadata["roles"]``. By default ``ADMIN_ROLES`` hold
every permission and ``READONLY_ROLES`` hold ``sessions:read``; when
``ROLE_PERMISSIONS`` is set it alone decides, role by role:
``admin=sessions:read+sessions:revoke+settings:update;helpdesk=sessions:read+sessions:revoke``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from .durations import show

READ = "sessions:read"
REVOKE = "sessions:revoke"
UPDATE = "settings:update"
#: Every permission, in the order they are listed in messages.
PERMISSIONS = (READ, REVOKE, UPDATE)
ALL_PERMISSIONS = frozenset(PERMISSIONS)

#: ``ROLE_PERMISSIONS`` parsed: (role, its permissions) pairs, in the order given.
RolePermissions: TypeAlias = tuple[tuple[str, frozenset[str]], ...]

# A role name as metadata["roles"] may hold it: no separator of this syntax, no space.
_ROLE = re.compile(r"[^\s=;+,]+")
_FORM = (
    "use role=perm+perm;role=perm..., such as admin=sessions:read+sessions:revoke+settings:update;"
    "helpdesk=sessions:read+sessions:revoke, with the permissions " + ", ".join(PERMISSIONS)
)


def role_permissions(value: object) -> RolePermissions | None:
    """Parse ``ROLE_PERMISSIONS``: the environment's text, or a mapping of role
    to permissions from code (``None``: unset).

    :raises ValueError: for a malformed entry, a role given twice or an unknown
        permission, naming it and the accepted form.
    """
    if value is None:
        return None
    if isinstance(value, str):
        entries = [_entry(part) for part in value.split(";") if part.strip()]
    elif isinstance(value, Mapping):
        entries = [(role, _permissions(role, perms)) for role, perms in value.items()]
    else:
        raise ValueError(f"is not a role-permission list ({_FORM})")
    if not entries:
        raise ValueError(f"is empty ({_FORM})")
    roles = [role for role, _ in entries]
    for role in roles:
        if not isinstance(role, str) or not _ROLE.fullmatch(role):
            raise ValueError(f"has the role {role!r}, which is not a role name ({_FORM})")
        if roles.count(role) > 1:
            raise ValueError(f"gives the role {role!r} twice ({_FORM})")
    return tuple(entries)


def _entry(part: str) -> tuple[str, frozenset[str]]:
    role, sep, perms = part.partition("=")
    if not sep or not role.strip() or not perms.strip():
        raise ValueError(f"has {show(part.strip())}, which is not role=perm+perm ({_FORM})")
    return role.strip(), _permissions(role.strip(), perms.split("+"))


def _permissions(role: object, perms: object) -> frozenset[str]:
    items = [perms] if isinstance(perms, str) else perms
    if not isinstance(items, Iterable):
        raise ValueError(f"gives the role {role!r} no list of permissions ({_FORM})")
    names: list[str] = []
    for item in items:
        name = item.strip() if isinstance(item, str) else item
        if not isinstance(name, str) or name not in ALL_PERMISSIONS:
            shown = repr(name) if isinstance(name, str) and len(name) <= 40 else "a value"
            raise ValueError(f"gives the role {role!r} the unknown permission {shown} ({_FORM})")
        names.append(name)
    if not names:
        raise ValueError(f"gives the role {role!r} no permission ({_FORM})")
    return frozenset(names)


def granted(
    roles: Iterable[str],
    *,
    role_permissions: RolePermissions | None,
    admin_roles: Iterable[str],
    readonly_roles: Iterable[str],
) -> frozenset[str]:
    """The permissions ``roles`` hold under the settings."""
    held = set(roles)
    if role_permissions is not None:
        found: set[str] = set()
        for role, perms in role_permissions:
            if role in held:
                found |= perms
        return frozenset(found)
    if held.intersection(admin_roles):
        return ALL_PERMISSIONS
    if held.intersection(readonly_roles):
        return frozenset({READ})
    return frozenset()
