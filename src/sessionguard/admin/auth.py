"""Who is calling the admin sub-app, what they may do, and the signed values
the sub-app hands out (CSRF tokens, listing cursors) without storing them.

Callers are either a session (permissions from ``metadata["roles"]`` through
``ROLE_PERMISSIONS``, or ``ADMIN_ROLES`` / ``READONLY_ROLES``, see
:mod:`sessionguard.permissions`) or the static ``ADMIN_TOKEN`` (every
permission). Cookie-authenticated writes must carry ``X-CSRF-Token``: an
HMAC of the session id under a key derived from the guard's secret keys.
Bearer-authenticated calls cannot be forged cross-site and need none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from itsdangerous import BadData, Signer

from ..incoming import bearer
from ..permissions import ALL_PERMISSIONS as ALL_PERMISSIONS
from ..permissions import READ as READ
from ..permissions import REVOKE as REVOKE
from ..permissions import UPDATE as UPDATE
from ..permissions import granted
from ..reasons import reason_text
from ..session import Session
from .http import AdminRequest, ApiError, invalid

if TYPE_CHECKING:
    from ..config import Config

#: Route requirement: any valid session (the self-service endpoints).
ANY_SESSION = "session"
#: Route requirement: none (``/openapi.json``).
PUBLIC = "public"
#: Methods that change state and so need a CSRF token under cookie auth.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller.

    ``actor`` is what audit events record: ``user:<id>`` or ``admin-token``.
    ``session`` is ``None`` for the admin token. ``source`` is ``"cookie"``,
    ``"bearer"`` or ``"admin-token"``.
    """

    actor: str
    permissions: frozenset[str]
    session: Session | None = None
    source: str = "bearer"


ANONYMOUS = Caller("anonymous", frozenset(), None, "none")


def permissions(session: Session, config: Config) -> frozenset[str]:
    """The admin permissions the roles of ``session`` grant."""
    return granted(session.roles, role_permissions=config.role_permissions,
                   admin_roles=config.admin_roles, readonly_roles=config.readonly_roles)


class Signing:
    """CSRF tokens and cursors, signed with keys derived from the guard's
    secret keys (the first signs, all verify: key rotation keeps working)."""

    __slots__ = ("_csrf_keys", "_cursors")

    def __init__(self, secret_keys: Sequence[str]) -> None:
        self._csrf_keys = tuple(
            hmac.new(key.encode(), b"sessionguard.admin.csrf", hashlib.sha256).digest()
            for key in secret_keys
        )
        self._cursors = Signer(
            list(reversed(secret_keys)), salt="sessionguard.admin.cursor",
            key_derivation="hmac", digest_method=hashlib.sha256,
        )

    def csrf_token(self, session_id: str) -> str:
        """The CSRF token of the session ``session_id``."""
        return _b64(_mac(self._csrf_keys[0], session_id))

    def csrf_valid(self, session_id: str, token: str) -> bool:
        """Whether ``token`` is the CSRF token of ``session_id`` (constant time)."""
        given = token.strip().encode("ascii", "replace")
        return any(
            hmac.compare_digest(given, _b64(_mac(key, session_id)).encode()) for key in self._csrf_keys
        )

    def cursor(self, kind: str, store_cursor: str | None) -> str | None:
        """The opaque cursor handed to clients for a store cursor of ``kind``."""
        if store_cursor is None:
            return None
        value = _b64(f"{kind}:{store_cursor}".encode())
        return self._cursors.sign(value).decode("ascii")

    def store_cursor(self, kind: str, cursor: str | None) -> str | None:
        """The store cursor inside a client's ``cursor``.

        :raises ApiError: ``422`` naming ``cursor`` when it was not made here
            (tampered, truncated, from another listing or another secret key).
        """
        if cursor is None:
            return None
        try:
            value = self._cursors.unsign(cursor.encode("utf-8", "replace"))
            text = base64.urlsafe_b64decode(value + b"=" * (-len(value) % 4)).decode("utf-8")
        except (BadData, ValueError):  # binascii.Error and UnicodeDecodeError are ValueErrors
            raise invalid("cursor", "is not a cursor from this listing") from None
        found, _, store_cursor = text.partition(":")
        if found != kind:
            raise invalid("cursor", "is not a cursor from this listing")
        return store_cursor


def _mac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def authenticate(request: AdminRequest, config: Config, is_admin_token: Callable[[str], bool]) -> Caller:
    """The caller of ``request``: the admin token if it presents one, else
    its session, else :data:`ANONYMOUS`."""
    authorization = request.headers.get("authorization")
    if authorization:
        token = bearer(authorization)
        if token is not None and is_admin_token(token):
            return Caller("admin-token", ALL_PERMISSIONS, None, "admin-token")
    session = request.session
    if session is None:
        return ANONYMOUS
    source = "cookie" if request.source == "cookie" else "bearer"
    return Caller(f"user:{session.user_id}", permissions(session, config), session, source)


def authorize(caller: Caller, requirement: str, request: AdminRequest, signing: Signing) -> None:
    """Check that ``caller`` meets ``requirement`` (a permission, several
    joined by ``+``, :data:`ANY_SESSION` or :data:`PUBLIC`) and, for a cookie-authenticated
    write, carries the CSRF token.

    :raises ApiError: ``401`` without credentials, ``403`` otherwise.
    """
    if requirement == PUBLIC:
        return
    if caller is ANONYMOUS:
        # A session that has just ended says why (the pages and expiry.js show it).
        reason = request.ended_reason
        message = reason_text(reason) or "Sign in, or send Authorization: Bearer <admin token>."
        raise ApiError(
            401, "unauthenticated", message, reason=reason,
            headers=(("www-authenticate", 'Bearer realm="sessionguard"'),),
        )
    if requirement == ANY_SESSION:
        if caller.session is None:
            raise ApiError(403, "session_required", "This endpoint acts on the caller's own session; "
                           "the admin token has none.")
    elif not caller.permissions.issuperset(requirement.split("+")):
        needed = requirement.replace("+", " and ") + (" permissions" if "+" in requirement else " permission")
        raise ApiError(403, "forbidden", f"This needs the {needed}.")
    if caller.source == "cookie" and request.method in UNSAFE_METHODS:
        token = request.headers.get(CSRF_HEADER)
        session = caller.session
        if not token or session is None or not signing.csrf_valid(session.id, token):
            raise ApiError(403, "csrf_failed", "Send the X-CSRF-Token header with the token "
                           "from GET api/csrf.")

