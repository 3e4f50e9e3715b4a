"""Handlers without I/O, and the two drivers that run them.

Every admin endpoint is written once, as a generator (the pattern of httpx's
``Auth.auth_flow``): it *yields* what it needs done — a store call, audit
events to record — and receives the result. :func:`run` performs those steps
with the sync store (WSGI), :func:`arun` with the async store (ASGI), so no
endpoint exists twice and the sync and async paths cannot drift.

The typed helpers below (``page = yield from list_sessions(...)``) keep the
handlers readable and checked by mypy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..audit import Event
from ..core import Record
from ..errors import StoreUnavailable
from ..policy import Policy
from ..stores.protocol import ActiveCounts, AsyncStore, Binding, Page, Store
from .http import ApiError, Response

logger = logging.getLogger("sessionguard")

if TYPE_CHECKING:
    from ..guard import SessionGuard


@dataclass(frozen=True, slots=True)
class StoreCall:
    """Call the store: ``call`` is given the sync store (:func:`run`) or the async
    one (:func:`arun`, which awaits the result). Both follow one protocol (the
    same method names and arguments), so mypy checks each call against both;
    the result is sent back into the handler."""

    call: Callable[[Store | AsyncStore], Any]


@dataclass(frozen=True, slots=True)
class Audit:
    """Record ``events`` (store, ``sessionguard.audit`` logger, ``on_event``);
    ``self_service``: they are one self-service action of this user (capped, see
    :func:`sessionguard.audit.admit`)."""

    events: tuple[Event, ...]
    self_service: str | None = None


Effect = StoreCall | Audit
#: What a handler is: a generator of effects that returns the answer.
Flow = Generator[Effect, Any, Response]
T = TypeVar("T")
#: A step inside a handler that returns a value of type ``T``.
Step = Generator[Effect, Any, T]


def drive(guard: SessionGuard, steps: Step[T]) -> T:
    """Run ``steps`` with the sync store: their value, or their exception
    (:class:`StoreUnavailable` included: a failed store call is thrown into the
    steps, which may catch it). An audit event that cannot be recorded is
    logged, not raised: the action itself happened."""
    try:
        effect = next(steps)
        while True:
            if isinstance(effect, Audit):
                try:
                    guard.record(effect.events, self_service=effect.self_service)
                except StoreUnavailable:
                    _unrecorded(guard)
                result = None
            else:
                try:
                    result = effect.call(guard.store)
                except StoreUnavailable as exc:
                    guard.store_failed()
                    effect = steps.throw(exc)  # a step may answer without the store (metrics)
                    continue
            effect = steps.send(result)
    except StopIteration as done:
        value: T = done.value
        return value
    finally:
        steps.close()  # steps left waiting on a failed store call end here, not at GC


async def adrive(guard: SessionGuard, steps: Step[T]) -> T:
    """Run ``steps`` with the async store (the same steps as :func:`drive`)."""
    try:
        effect = next(steps)
        while True:
            if isinstance(effect, Audit):
                try:
                    await guard.arecord(effect.events, self_service=effect.self_service)
                except StoreUnavailable:
                    _unrecorded(guard)
                result = None
            else:
                try:
                    result = await effect.call(guard.async_store)
                except StoreUnavailable as exc:
                    guard.store_failed()
                    effect = steps.throw(exc)
                    continue
            effect = steps.send(result)
    except StopIteration as done:
        value: T = done.value
        return value
    finally:
        steps.close()


def run(guard: SessionGuard, flow: Flow) -> Response:
    """Drive ``flow`` with the sync store; errors become their answers."""
    try:
        return drive(guard, flow)
    except ApiError as error:
        return error.response
    except StoreUnavailable:
        return unavailable(guard)


async def arun(guard: SessionGuard, flow: Flow) -> Response:
    """Drive ``flow`` with the async store (the same steps as :func:`run`)."""
    try:
        return await adrive(guard, flow)
    except ApiError as error:
        return error.response
    except StoreUnavailable:
        return unavailable(guard)


def _unrecorded(guard: SessionGuard) -> None:
    # The action itself happened: answering 503 would make the caller retry it.
    guard.store_failed()
    logger.warning("sessionguard: audit event not recorded (store unavailable)")


def unavailable(guard: SessionGuard) -> Response:
    """The guard's ``503`` answer as a :class:`Response`."""
    refusal = guard.unavailable
    return Response(refusal.status, refusal.headers, refusal.body)


# -- typed steps ---------------------------------------------------------------


def now() -> Step[int]:
    """The store's clock (epoch ms)."""
    ms: int = yield StoreCall(lambda store: store.now())
    return ms


def policy() -> Step[Policy]:
    """The policy in force."""
    current: Policy = yield StoreCall(lambda store: store.policy())
    return current


def set_policy(new: Policy) -> Step[None]:
    """Store ``new`` for every app server sharing the store."""
    yield StoreCall(lambda store: store.set_policy(new))


def end(session_id: str, reason: str, *, user_id: str | None = None) -> Step[Record | None]:
    """End one session; the ended :class:`Record` or ``None``."""
    record: Record | None = yield StoreCall(lambda store: store.end(session_id, reason, user_id=user_id))
    return record


def end_user(
    user_id: str, reason: str, *, platform: str | None = None, keep: str | None = None
) -> Step[list[Record]]:
    """End a user's sessions; the ended records."""
    records: list[Record] = yield StoreCall(
        lambda store: store.end_user(user_id, reason, platform=platform, keep=keep))
    return records


def end_all(*, keep: str | None) -> Step[None]:
    """End every session except ``keep``."""
    yield StoreCall(lambda store: store.end_all(keep=keep))


def bind(session_id: str, key: str, challenge: str, issued: int) -> Step[Binding]:
    """Bind a session to a device's key (DBSC registration)."""
    bound: Binding = yield StoreCall(lambda store: store.bind(session_id, key, challenge, issued))
    return bound


def redeem(session_id: str, challenge: str, issued: int) -> Step[Binding]:
    """Answer a bound session's challenge once (DBSC refresh): its key."""
    redeemed: Binding = yield StoreCall(lambda store: store.redeem(session_id, challenge, issued))
    return redeemed


def user_sessions(user_id: str) -> Step[list[Record]]:
    """A user's valid sessions, newest login first."""
    records: list[Record] = yield StoreCall(lambda store: store.user_sessions(user_id))
    return records


def list_sessions(
    *, user_id: str | None, platform: str | None, limit: int, cursor: str | None, status: str = "active"
) -> Step[Page]:
    """One page of sessions of ``status`` (``active``, ``ended``, ``all``)."""
    page: Page = yield StoreCall(
        lambda store: store.list_sessions(user_id=user_id, platform=platform, limit=limit, cursor=cursor,
                                          status=status))
    return page


def sweep() -> Step[int]:
    """Record the endings of sessions that timed out unnoticed; how many."""
    recorded: int = yield StoreCall(lambda store: store.sweep())
    return recorded


def user_timeouts(user_id: str) -> Step[dict[str, int | None]]:
    """A user's own idle timeouts by platform."""
    timeouts: dict[str, int | None] = yield StoreCall(lambda store: store.user_timeouts(user_id))
    return timeouts


def set_user_timeouts(user_id: str, timeouts: Mapping[str, int | None]) -> Step[None]:
    """Replace a user's own idle timeouts."""
    yield StoreCall(lambda store: store.set_user_timeouts(user_id, dict(timeouts)))


def set_roles(user_id: str, roles: Sequence[str]) -> Step[list[Record]]:
    """Replace ``metadata["roles"]`` of a user's valid sessions; the records updated."""
    records: list[Record] = yield StoreCall(lambda store: store.set_roles(user_id, list(roles)))
    return records


def events(*, user_id: str | None, limit: int, cursor: str | None) -> Step[Page]:
    """One page of audit events, newest first."""
    page: Page = yield StoreCall(lambda store: store.events(user_id=user_id, limit=limit, cursor=cursor))
    return page


def active_counts() -> Step[ActiveCounts | None]:
    """The active sessions per platform (the store's count)."""
    counts: ActiveCounts | None = yield StoreCall(lambda store: store.active_counts())
    return counts


def record(events: Sequence[Event]) -> Step[None]:
    """Record audit events."""
    if events:
        yield Audit(tuple(events))


def record_self_service(user_id: str, events: Sequence[Event]) -> Step[None]:
    """Record the audit events of one self-service action of ``user_id``: at most one
    ``settings_changed`` a minute and 60 events an hour enter the log (SPEC 9.3)."""
    if events:
        yield Audit(tuple(events), user_id)
