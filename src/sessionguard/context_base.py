"""What the per-request objects of both shells share (:class:`_Context`, the
base of :class:`~.context.SessionContext` and
:class:`~.context.AsyncSessionContext`): the context's data (the session, why
it ended, the cookie to set, the raw request until the response starts), its
construction on the request path, and the I/O-free steps around the app's
store calls: checking and planning a login (platform, device, metadata), and
adopting the store's answers into the context with the audit events to record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from . import audit, report
from .core import Outcome, Record, cookie_max_age
from .errors import SessionLimitReached, StoreUnavailable
from .incoming import Presented
from .platform import PLATFORMS, classify, clip, device_label
from .session import Session
from .stores.protocol import Check, Created, NewSession
from .tokens import TAG_LENGTH, session_id

if TYPE_CHECKING:
    from .anomaly import Anomaly
    from .guard import SessionGuard
    from .policy import Policy

#: Longest user id accepted by ``login``.
MAX_USER_ID = 256
#: Largest JSON size of ``metadata`` accepted by ``login``.
MAX_METADATA = 4096


_C = TypeVar("_C", bound="_Context")


class _Context:
    # Each shell subclasses one of the two classes of :mod:`.context`: its
    # subclass reads headers and the client address from the raw request
    # (``_header``, ``_ip``) and is also the app's ``start_response`` / ``send``,
    # wrapping ``respond`` to add the pending cookie; so an anonymous request
    # costs one object.
    __slots__ = ("session", "ended_reason", "set_cookie", "_guard", "_raw", "_respond", "_source",
                 "_offer")
    #: the current :class:`Session`, or ``None``
    session: Session | None
    #: why the presented session is no longer valid, or ``None``
    ended_reason: str | None
    #: the ``Set-Cookie`` value this response must carry, if any
    set_cookie: str | None
    _guard: SessionGuard
    # The ASGI scope or WSGI environ, read at login, until the response starts
    # (``_started``). Dropping it then breaks the request <-> context reference
    # cycle, so the request is freed at once rather than by the garbage
    # collector (about 0.7 us a request inside Flask).
    _raw: Any
    _respond: Any  # the server's send / start_response
    _source: str | None
    # ``Secure-Session-Registration`` for the response (a login offering DBSC);
    # sent only with a ``Set-Cookie``, so the shells read it only then
    _offer: str | None
    #: under ``ON_ANOMALY=flag``, the :class:`~.anomaly.Anomaly` of a request whose
    #: client changed since login (ask for re-authentication: a new ``login``
    #: records the current client); ``None`` otherwise. A class attribute here:
    #: only a flagged request's context (a subclass of the shell's) has it as a slot.
    anomaly: Anomaly | None = None

    # Built by ``_of``, not ``__init__``: CPython runs an ``__init__`` through
    # the type's C slot, a new interpreter frame stack on every request; a
    # classmethod is an ordinary Python call (about 0.2 us less a request).
    # With no ``__init__``, ``cls()`` is C all the way (``object.__new__(cls)``
    # parses its arguments: about 400 instructions more). The shells' no-token
    # path sets the slots itself, without even this call.
    @classmethod
    def _of(
        cls: type[_C],
        guard: SessionGuard,
        raw: Any,
        respond: Any,
        session: Session | None = None,
        ended_reason: str | None = None,
        source: str | None = None,
        set_cookie: str | None = None,
    ) -> _C:
        """The context of one request. ``raw`` is its ASGI scope or WSGI
        environ, ``respond`` the server's ``send`` or ``start_response``."""
        self = cls()
        self.session = session
        self.ended_reason = ended_reason
        self.set_cookie = set_cookie
        self._guard = guard
        self._raw = raw
        self._respond = respond
        self._source = source
        self._offer = None
        return self

    @property
    def source(self) -> str | None:
        """How the request presented its token: ``"cookie"``, ``"bearer"`` or ``None``."""
        return self._source

    @property
    def _started(self) -> bool:
        """Whether the response has started: its headers are gone."""
        return self._raw is None

    def _header(self, name: str) -> str | None:
        """One request header (lower-case ``name``), or ``None``."""
        raise NotImplementedError

    def _ip(self) -> str:
        """The client address, honouring trusted proxies."""
        raise NotImplementedError

    def _https(self) -> bool:
        """Whether the client came over HTTPS, honouring trusted proxies."""
        raise NotImplementedError

    def _store_failed(self) -> None:
        """A store call the app made through this context failed: counted
        (``METRICS``), then :meth:`_unavailable`."""
        raise NotImplementedError

    def _unavailable(self) -> None:
        """A store call made while this request is served failed (through this
        context or not, :mod:`.inflight`): the shell makes a ``500`` answer to
        this request (the framework's error handler catching the
        :class:`StoreUnavailable`) the ``503`` instead."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _store_calls(self) -> Iterator[None]:
        """Around the app's store calls through this context: a failure makes the
        request's ``500`` a ``503`` (:meth:`_store_failed`) and propagates."""
        try:
            yield
        except StoreUnavailable:
            self._store_failed()
            raise

    def __repr__(self) -> str:
        return f"<{type(self).__name__} session={self.session!r} ended_reason={self.ended_reason!r}>"

    def _may_log_in(self, user_id: str) -> None:
        """Refuse a login that cannot be carried out, before any store call."""
        if self._started:
            raise RuntimeError("login() after the response started: its cookie can no longer be set")
        if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_USER_ID:
            raise ValueError(f"user_id must be a non-empty string of at most {MAX_USER_ID} characters")

    def _plan(
        self,
        user_id: str,
        tag: str,
        remember_me: bool,
        metadata: Mapping[str, Any] | None,
        platform: str | None,
    ) -> tuple[NewSession, str]:
        """The session to create for ``user_id``, whose slot tag is ``tag`` (the
        store's), and its token."""
        metadata = dict(metadata or {})
        if len(audit.compact_json(metadata).encode()) > MAX_METADATA:  # bytes, as stored
            raise ValueError(f"metadata must serialise to at most {MAX_METADATA} bytes of JSON")
        ua = clip(self._header("user-agent") or "")
        platforms = self._guard.platforms
        if platform is None:
            stated = self._header(self._guard.platform_header)
            if stated is not None and len(platforms) > len(PLATFORMS):  # an extra kind (SPEC 9.1)
                named = stated.strip().lower()
                platform = named if named in platforms[len(PLATFORMS):] else None
            if platform is None:
                platform = classify(stated=stated, ch_mobile=self._header("sec-ch-ua-mobile"), user_agent=ua)
        elif platform not in platforms:
            raise ValueError(f"platform must be one of {', '.join(platforms)}")
        ip = self._ip()
        sid = self._guard.tokens.new_sid(tag)
        new = NewSession(
            id=session_id(sid), user_id=user_id, platform=platform, remember_me=bool(remember_me),
            ip=ip, city=self._guard.city(ip), user_agent=ua, device=device_label(ua),
            metadata=metadata,
        )
        return new, self._guard.tokens.sign(sid)

    def _logged_in(self, created: Created, token: str, policy: Policy) -> list[audit.Event]:
        record = created.record
        self.session = Session.from_record(record, policy, token)
        self.ended_reason = None
        self.set_cookie = self._guard.cookie(token, cookie_max_age(record, policy, record.created))
        self._offer = self._guard.decider.registration(record, self._source, self._https)
        actor = f"user:{record.user_id}"
        events = [audit.ended(r, "evicted", "system", record.created) for r in created.evicted]
        if created.replaced is not None:
            events.append(audit.ended(created.replaced, "signed_out", actor, record.created))
        events.append(audit.about(record, "login", actor, record.created))
        # ENFORCE=report: what the limits would have done
        events += [report.would_end(r, "evicted", record.created) for r in created.reported]
        if created.would_refuse:
            events.append(report.would_end(record, "rejected", record.created))
        return events

    def _rejected(self, error: SessionLimitReached, now: int) -> list[audit.Event]:
        return [audit.Event("rejected", now, f"user:{error.user_id}", error.user_id, None,
                            error.platform, "limit")]

    def _others_ended(self, records: list[Record], now: int) -> list[audit.Event]:
        return [audit.ended(r, "signed_out", f"user:{r.user_id}", now) for r in records]

    def _rechecked(self, check: Check) -> tuple[audit.Event, ...]:
        """Adopt a fresh check of the current session; the audit events to record."""
        session = self.session
        assert session is not None  # checked by the caller
        verdict = self._guard.verdict(Presented(Outcome.VALID, session.id, self._source), check)
        self.session, self.ended_reason = verdict.session, verdict.ended_reason
        if verdict.session is None and verdict.set_cookie is not None and not self._started:
            self.set_cookie = verdict.set_cookie  # a response yet to start clears the cookie
        return verdict.events

    def _rotating(self) -> tuple[str, str, str] | None:
        """``(current id, new id, new token)`` for ``rotate()``; ``None`` without a session."""
        if self._started:
            raise RuntimeError("rotate() after the response started: its cookie can no longer be set")
        if self.session is None:
            return None
        # the same user, so the same slot tag: the current id's
        sid = self._guard.tokens.new_sid(self.session.id[:TAG_LENGTH])
        return self.session.id, session_id(sid), self._guard.tokens.sign(sid)

    def _rotated(self, check: Check, token: str) -> tuple[audit.Event, ...]:
        """Adopt the store's answer to a rotation; the audit events to record."""
        record = check.record
        if check.outcome is not Outcome.VALID or record is None:
            return self._rechecked(check)  # it had ended: as a recheck would tell
        policy = check.policy or self._guard.default_policy
        self.session = Session.from_record(record, policy, token)
        if self._source != "bearer":
            self.set_cookie = self._guard.cookie(token, cookie_max_age(record, policy, record.last_seen))
            # a device-bound session comes out unbound (its key was the old id's): offer binding again
            self._offer = self._guard.decider.registration(record, self._source, self._https)
        return ()

    def _logged_out(self, ended: Record | None, now: int) -> list[audit.Event]:
        self.session = None
        self.set_cookie = self._guard.clear_cookie if self._source != "bearer" else None
        if ended is None:
            return []
        return [audit.ended(ended, "signed_out", f"user:{ended.user_id}", now)]
