"""The per-request object apps reach as ``scope["sessionguard"]`` (ASGI) or
``environ["sessionguard"]`` (WSGI): what an app does with it (``login``,
``logout``, ``end_others``, ``recheck``, ``rotate``).

:class:`AsyncSessionContext` and :class:`SessionContext` differ only by
``await``: both plan with the shared methods of :class:`_Context`
(:mod:`.context_base`, with the context's data).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .context_base import MAX_METADATA as MAX_METADATA
from .context_base import MAX_USER_ID as MAX_USER_ID
from .context_base import _Context as _Context
from .errors import SessionLimitReached, StoreUnavailable
from .session import Session


class SessionContext(_Context):
    """The request's session, for WSGI apps (plain calls)."""

    __slots__ = ()

    def login(
        self,
        user_id: str,
        *,
        remember_me: bool = False,
        metadata: Mapping[str, Any] | None = None,
        platform: str | None = None,
    ) -> Session:
        """Create a session for ``user_id``, ending the one this request
        presented (not counted against the limit). The response carries the
        new cookie.

        :raises SessionLimitReached: the policy refuses logins over the limit;
            nothing has changed (the presented session stays valid).
        """
        self._may_log_in(user_id)
        store = self._guard.store
        ending = self.session.id if self.session is not None else None
        try:
            new, token = self._plan(user_id, store.slot_tag(user_id), remember_me, metadata, platform)
            try:
                created = store.create(new, ending=ending)
            except SessionLimitReached as error:
                self._guard.record(self._rejected(error, self._guard.now_ms()))
                raise
            events = self._logged_in(created, token, store.policy())
            self._guard.record(events)
        except StoreUnavailable:
            self._store_failed()
            raise
        return self.session  # type: ignore[return-value]

    def logout(self) -> None:
        """End the current session (``signed_out``) and clear the cookie."""
        store = self._guard.store
        try:
            ended = store.end(self.session.id, "signed_out") if self.session is not None else None
            self._guard.record(self._logged_out(ended, self._guard.now_ms()))
        except StoreUnavailable:
            self._store_failed()
            raise

    def end_others(self) -> int:
        """End every other session of the current user (``signed_out``), e.g.
        after a password change; how many ended (0 without a session)."""
        if self.session is None:
            return 0
        with self._store_calls():
            records = self._guard.store.end_user(self.session.user_id, "signed_out", keep=self.session.id)
            self._guard.record(self._others_ended(records, self._guard.now_ms()))
        return len(records)

    def recheck(self, *, passive: bool = False) -> Session | None:
        """Judge the current session again against the store (a long response,
        a stream): the :class:`Session`, or ``None`` once it has ended
        (:attr:`ended_reason` says why). Counts as activity unless ``passive``.

        :raises StoreUnavailable: when the store cannot be reached.
        """
        if self.session is None:
            return None
        with self._store_calls():
            check = self._guard.store.check(self.session.id, passive=passive)
            self._guard.record(self._rechecked(check))
        return self.session

    def rotate(self) -> Session | None:
        """Give the current session a new token (after a privilege change; the
        old token becomes ``invalid``), keeping its login time, platform,
        remember-me and metadata, and send the new cookie. Returns the session,
        whose ``.token`` is the new token (for bearer clients), or ``None``
        without a session or once it has ended (:attr:`ended_reason`).

        :raises RuntimeError: after the response started (the cookie could not follow).
        """
        planned = self._rotating()
        if planned is None:
            return None
        current, new_id, token = planned
        with self._store_calls():
            check = self._guard.store.rotate(current, new_id)
            self._guard.record(self._rotated(check, token))
        return self.session


class AsyncSessionContext(_Context):
    """The request's session, for ASGI apps (coroutines)."""

    __slots__ = ()

    async def login(
        self,
        user_id: str,
        *,
        remember_me: bool = False,
        metadata: Mapping[str, Any] | None = None,
        platform: str | None = None,
    ) -> Session:
        """Create a session for ``user_id``, ending the one this request
        presented (not counted against the limit). The response carries the
        new cookie.

        :raises SessionLimitReached: the policy refuses logins over the limit;
            nothing has changed (the presented session stays valid).
        """
        self._may_log_in(user_id)
        store = self._guard.async_store
        ending = self.session.id if self.session is not None else None
        try:
            new, token = self._plan(user_id, await store.slot_tag(user_id), remember_me, metadata, platform)
            try:
                created = await store.create(new, ending=ending)
            except SessionLimitReached as error:
                await self._guard.arecord(self._rejected(error, self._guard.now_ms()))
                raise
            events = self._logged_in(created, token, await store.policy())
            await self._guard.arecord(events)
        except StoreUnavailable:
            self._store_failed()
            raise
        return self.session  # type: ignore[return-value]

    async def logout(self) -> None:
        """End the current session (``signed_out``) and clear the cookie."""
        store = self._guard.async_store
        try:
            ended = await store.end(self.session.id, "signed_out") if self.session is not None else None
            await self._guard.arecord(self._logged_out(ended, self._guard.now_ms()))
        except StoreUnavailable:
            self._store_failed()
            raise

    async def end_others(self) -> int:
        """As :meth:`SessionContext.end_others`: end the user's other sessions."""
        if self.session is None:
            return 0
        with self._store_calls():
            store = self._guard.async_store
            records = await store.end_user(self.session.user_id, "signed_out", keep=self.session.id)
            await self._guard.arecord(self._others_ended(records, self._guard.now_ms()))
        return len(records)

    async def recheck(self, *, passive: bool = False) -> Session | None:
        """As :meth:`SessionContext.recheck`: judge the session again (websockets, streams)."""
        if self.session is None:
            return None
        with self._store_calls():
            check = await self._guard.async_store.check(self.session.id, passive=passive)
            await self._guard.arecord(self._rechecked(check))
        return self.session

    async def rotate(self) -> Session | None:
        """As :meth:`SessionContext.rotate`: a new token for the current session."""
        planned = self._rotating()
        if planned is None:
            return None
        current, new_id, token = planned
        with self._store_calls():
            check = await self._guard.async_store.rotate(current, new_id)
            await self._guard.arecord(self._rotated(check, token))
        return self.session
