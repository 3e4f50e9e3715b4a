"""The pure rules of sessionguard.core, table-driven."""

from __future__ import annotations

import pytest

from sessionguard.core import (
    CHALLENGE_MS,
    DAY,
    LIMITS_GRACE_MS,
    NEVER_IDLE,
    SECOND,
    Epoch,
    Outcome,
    Record,
    admission,
    cookie_max_age,
    cookie_refresh_due,
    deadline,
    epoch_after,
    flush_by,
    idle_limit,
    judge,
    limits_lowered,
    reconcile_due,
    redeemable,
    refuses_token,
    retention,
    still_used,
    surplus,
    touch_due,
    touch_interval,
    touched,
)
from sessionguard.policy import PlatformPolicy, Policy

H = 3600


def policy(**overrides: object) -> Policy:
    """A policy; ``web=``, ``mobile=``, ``desktop=`` or another platform's name set
    that platform's :class:`PlatformPolicy`."""
    platforms = {
        "web": PlatformPolicy(H, 30 * 86400, None),
        "mobile": PlatformPolicy(None, 30 * 86400, 2),
        "desktop": PlatformPolicy(8 * H, 7 * 86400, 1),
    }
    base: dict[str, object] = {"remember_me_period": 14 * 86400}
    for name, value in overrides.items():
        if isinstance(value, PlatformPolicy):
            platforms[name] = value
        else:
            base[name] = value
    return Policy(platforms, **base)  # type: ignore[arg-type]


def record(**fields: object) -> Record:
    base: dict[str, object] = {"id": "s1", "user_id": "u", "platform": "web", "created": 0, "last_seen": 0}
    base.update(fields)
    return Record(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rec", "now", "epoch", "expected"),
    [
        pytest.param(record(), H * SECOND - 1, Epoch(), Outcome.VALID, id="idle-just-before"),
        pytest.param(record(), H * SECOND, Epoch(), Outcome.IDLE_TIMEOUT, id="idle-expired"),
        pytest.param(record(last_seen=30 * DAY - SECOND), 30 * DAY, Epoch(), Outcome.ABSOLUTE_TIMEOUT,
                     id="absolute-beats-activity"),
        pytest.param(record(last_seen=29 * DAY), 30 * DAY, Epoch(), Outcome.IDLE_TIMEOUT,
                     id="idled-out-first-says-so-after-the-absolute-timeout"),
        pytest.param(record(last_seen=30 * DAY - H), 30 * DAY, Epoch(), Outcome.ABSOLUTE_TIMEOUT,
                     id="both-deadlines-at-once-absolute"),
        pytest.param(record(remember_me=True), 13 * DAY, Epoch(), Outcome.VALID, id="remember-me-idle"),
        pytest.param(record(remember_me=True), 14 * DAY, Epoch(), Outcome.IDLE_TIMEOUT,
                     id="remember-me-period-over"),
        pytest.param(record(remember_me=True, last_seen=29 * DAY), 30 * DAY, Epoch(),
                     Outcome.ABSOLUTE_TIMEOUT, id="remember-me-cannot-pass-absolute"),
        pytest.param(record(platform="mobile"), 29 * DAY, Epoch(), Outcome.VALID, id="mobile-never-idles"),
        pytest.param(record(), 10, Epoch(5), Outcome.SIGNOUT_ALL, id="signout-all"),
        pytest.param(record(), 10, Epoch(5, keep="s1"), Outcome.VALID, id="signout-all-kept"),
        pytest.param(record(created=5), 10, Epoch(5), Outcome.VALID, id="created-at-epoch-survives"),
        pytest.param(record(user_idle=60), 61 * SECOND, Epoch(), Outcome.VALID,
                     id="user-timeout-ignored-unless-allowed"),
    ],
)
def test_judge(rec: Record, now: int, epoch: Epoch, expected: Outcome) -> None:
    assert judge(rec, policy(), now, epoch) is expected


def test_user_timeout_when_allowed() -> None:
    allowed = policy(allow_user_timeouts=True)
    assert idle_limit(record(user_idle=60), allowed) == 60
    assert judge(record(user_idle=60), allowed, 60 * SECOND, Epoch()) is Outcome.IDLE_TIMEOUT
    assert idle_limit(record(user_idle=60, remember_me=True), allowed) == 14 * 86400


def test_user_timeout_of_never() -> None:
    allowed, never = policy(allow_user_timeouts=True), record(user_idle=NEVER_IDLE)
    assert idle_limit(never, allowed) is None
    assert judge(never, allowed, 29 * DAY, Epoch()) is Outcome.VALID  # never idles out ...
    assert judge(never, allowed, 30 * DAY, Epoch()) is Outcome.ABSOLUTE_TIMEOUT  # ... but ends all the same
    assert deadline(never, allowed) == 30 * DAY
    assert idle_limit(never, policy()) == 3600  # not allowed: the admin's value


def test_epoch_after_ends_sessions_created_up_to_now() -> None:
    epoch = epoch_after(100, None, Epoch())
    assert judge(record(created=100, last_seen=100), policy(), 100, epoch) is Outcome.SIGNOUT_ALL
    assert judge(record(created=101, last_seen=101), policy(), 101, epoch) is Outcome.VALID


def test_epoch_after_keeps_no_session_the_last_epoch_ended() -> None:
    first = epoch_after(100, record(id="a", created=50), Epoch())
    assert epoch_after(200, record(id="b", created=50), first) == Epoch(201, None)
    assert epoch_after(200, record(id="a", created=50), first) == Epoch(201, "a")
    assert epoch_after(200, record(id="c", created=150), first) == Epoch(201, "c")


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        pytest.param(record(), H * SECOND, id="idle-first"),
        pytest.param(record(platform="mobile"), 30 * DAY, id="absolute-only"),
        pytest.param(record(last_seen=30 * DAY - 10), 30 * DAY, id="absolute-sooner"),
    ],
)
def test_deadline(rec: Record, expected: int) -> None:
    assert deadline(rec, policy()) == expected


def test_deadline_never() -> None:
    never = policy(mobile=PlatformPolicy(None, None, None))
    assert deadline(record(platform="mobile"), never) is None
    assert retention(record(platform="mobile"), never, 0) is None


def test_retention_keeps_a_day_past_the_deadline() -> None:
    assert retention(record(), policy(), 0) == H * SECOND + DAY


@pytest.mark.parametrize(
    ("rec", "interval"),
    [
        pytest.param(record(user_idle=900), 5 * 60 * SECOND, id="a-third-of-the-idle-timeout"),
        pytest.param(record(), 10 * 60 * SECOND, id="ten-minutes-at-most"),
        pytest.param(record(platform="mobile"), 10 * 60 * SECOND, id="never-idle"),
        pytest.param(record(remember_me=True), 10 * 60 * SECOND, id="remember-me"),
        pytest.param(record(user_idle=2), SECOND, id="a-second-at-least"),
    ],
)
def test_touch_interval(rec: Record, interval: int) -> None:
    allowed = policy(allow_user_timeouts=True)
    assert touch_interval(rec, allowed) == interval


@pytest.mark.parametrize(
    ("last_seen", "now", "passive", "due"),
    [
        pytest.param(0, 10 * 60 * SECOND - 1, False, False, id="within-the-interval"),
        pytest.param(0, 10 * 60 * SECOND, False, True, id="an-interval-later"),
        pytest.param(0, 10 * H * SECOND, True, False, id="passive-never"),
    ],
)
def test_touch_due(last_seen: int, now: int, passive: bool, due: bool) -> None:
    assert touch_due(record(last_seen=last_seen), policy(), now, passive=passive) is due


def test_an_unwritten_use_is_due_within_an_interval_and_before_the_stored_idle_end() -> None:
    interval = 10 * 60 * SECOND
    assert flush_by(record(), policy(), 60 * SECOND) == 60 * SECOND + interval
    # used late in the stored idle window: written 30 s before the stored last-seen would end it
    assert flush_by(record(), policy(), 55 * 60 * SECOND) == H * SECOND - 30 * SECOND
    # short idle timeouts: at most one interval before
    short = policy(web=PlatformPolicy(3, None, None))
    assert flush_by(record(), short, 2 * SECOND) == 2 * SECOND


def test_touched_changes_last_seen_only_and_never_backwards() -> None:
    full = Record("id", "u", "mobile", 1, 5, remember_me=True, ip="10.0.0.1", city="Oslo",
                  user_agent="ua", device="phone", metadata={"k": 1}, user_idle=60, device_bound=True)
    # touched() names every field by hand: a new field must be added there (and here)
    assert Record._fields == (
        "id", "user_id", "platform", "created", "last_seen", "remember_me", "ip", "city",
        "user_agent", "device", "metadata", "user_idle", "device_bound")
    used = touched(full, 9)
    assert used.last_seen == 9
    assert used == full._replace(last_seen=9)
    assert touched(full, 4) is full and touched(full, 5) is full


def test_cookie_max_age() -> None:
    assert cookie_max_age(record(), policy(), 0) is None
    assert cookie_max_age(record(remember_me=True), policy(), 0) == 14 * 86400
    assert cookie_max_age(record(remember_me=True, platform="desktop"), policy(), 0) == 7 * 86400
    assert cookie_max_age(record(remember_me=True, platform="desktop"), policy(), 6 * DAY) == 86400


def test_cookie_refresh_once_a_day() -> None:
    rec = record(remember_me=True, last_seen=DAY - 1)
    assert cookie_refresh_due(rec, DAY)
    assert not cookie_refresh_due(record(remember_me=True, last_seen=DAY), DAY + 5)
    assert not cookie_refresh_due(record(last_seen=DAY - 1), DAY)


def alive(n: int, platform: str = "mobile") -> list[Record]:
    return [record(id=f"s{i}", platform=platform, created=i, last_seen=100 - i) for i in range(n)]


@pytest.mark.parametrize(
    ("pol", "sessions", "platform", "evict", "refused"),
    [
        pytest.param(policy(), alive(1), "mobile", (), False, id="under-limit"),
        pytest.param(policy(), alive(2), "mobile", ("s0",), False, id="evict-oldest-login"),
        pytest.param(policy(evict="least_recent"), alive(2), "mobile", ("s1",), False,
                     id="evict-least-recent"),
        pytest.param(policy(), alive(4), "mobile", ("s0", "s1", "s2"), False, id="shrunk-limit"),
        pytest.param(policy(on_limit="reject"), alive(2), "mobile", (), True, id="reject"),
        pytest.param(policy(), alive(50, "web"), "web", (), False, id="unlimited"),
    ],
)
def test_admission(pol: Policy, sessions: list[Record], platform: str, evict: tuple[str, ...],
                   refused: bool) -> None:
    plan = admission(sessions, pol, platform)
    assert plan.evict == evict and plan.refused is refused


def mixed() -> list[Record]:
    """Two web and two mobile sessions, logged in one after the other, the first used last."""
    platforms = ("web", "mobile", "web", "mobile")
    return [record(id=f"s{i}", platform=p, created=i, last_seen=10 + i) for i, p in enumerate(platforms)]


@pytest.mark.parametrize(
    ("pol", "platform", "evict", "refused", "total"),
    [
        pytest.param(policy(max_sessions_total=5), "desktop", (), False, False, id="total-under"),
        pytest.param(policy(max_sessions_total=4), "desktop", ("s0",), False, False, id="total-oldest"),
        pytest.param(policy(max_sessions_total=4, evict="least_recent"), "desktop", ("s0",), False, False,
                     id="total-least-recent"),
        pytest.param(policy(max_sessions_total=3), "desktop", ("s0", "s1"), False, False, id="total-shrunk"),
        pytest.param(policy(max_sessions_total=4, on_limit="reject"), "desktop", (), True, True,
                     id="total-reject"),
        # mobile's limit (2) evicts s1 first; the total then counts the three left
        pytest.param(policy(max_sessions_total=3), "mobile", ("s1", "s0"), False, False,
                     id="platform-then-total"),
        pytest.param(policy(max_sessions_total=4), "mobile", ("s1",), False, False, id="platform-only"),
        pytest.param(policy(max_sessions_total=3, on_limit="reject"), "mobile", (), True, False,
                     id="platform-rejects-first"),
    ],
)
def test_admission_with_a_total(pol: Policy, platform: str, evict: tuple[str, ...], refused: bool,
                                total: bool) -> None:
    plan = admission(mixed(), pol, platform)
    assert (plan.evict, plan.refused, plan.total) == (evict, refused, total)


def test_the_total_under_enforce_report_is_reported() -> None:
    plan = admission(mixed(), policy(max_sessions_total=3, enforce=False), "mobile")
    assert (plan.evict, plan.reported) == ((), ("s1", "s0"))
    plan = admission(mixed(), policy(max_sessions_total=2, on_limit="reject", enforce=False), "web")
    assert (plan.refused, plan.would_refuse) == (False, True)


@pytest.mark.parametrize(
    ("pol", "ended"),
    [
        pytest.param(policy(mobile=PlatformPolicy(None, None, None)), (), id="none"),
        pytest.param(policy(), (), id="within"),  # mobile 2, web unlimited
        pytest.param(policy(mobile=PlatformPolicy(None, None, 1)), ("s1",), id="platform"),
        pytest.param(policy(max_sessions_total=2), ("s0", "s1"), id="total"),
        pytest.param(policy(max_sessions_total=2, evict="least_recent"), ("s0", "s1"), id="least-recent"),
        pytest.param(policy(mobile=PlatformPolicy(None, None, 1), max_sessions_total=2), ("s1", "s0"),
                     id="platform-then-total"),
        pytest.param(policy(max_sessions_total=1, enforce=False), (), id="report"),
    ],
)
def test_surplus(pol: Policy, ended: tuple[str, ...]) -> None:
    assert tuple(r.id for r in surplus(mixed(), pol)) == ended


def test_surplus_follows_the_evict_order() -> None:
    used = [record(id="a", created=0, last_seen=50), record(id="b", created=1, last_seen=5),
            record(id="c", created=2, last_seen=9)]
    assert [r.id for r in surplus(used, policy(max_sessions_total=1))] == ["a", "b"]
    assert [r.id for r in surplus(used, policy(max_sessions_total=1, evict="least_recent"))] == ["b", "c"]


@pytest.mark.parametrize(
    ("old", "new", "lowered"),
    [
        pytest.param({"web": None, "*": None}, {"web": 3, "*": None}, True, id="set"),
        pytest.param({"web": 3, "*": None}, {"web": 2, "*": None}, True, id="smaller"),
        pytest.param({"web": 3, "*": 5}, {"web": 3, "*": 4}, True, id="total"),
        pytest.param({"web": 3, "*": 5}, {"web": 4, "*": None}, False, id="raised"),
        pytest.param({"web": 3}, {"web": 3}, False, id="same"),
        pytest.param({}, {"tv": 2}, True, id="new-name"),
    ],
)
def test_limits_lowered(old: dict[str, int | None], new: dict[str, int | None], lowered: bool) -> None:
    assert limits_lowered(old, new) is lowered


def test_policy_limits_name_the_total() -> None:
    assert policy(max_sessions_total=4).limits() == {"web": None, "mobile": 2, "desktop": 1, "*": 4}


@pytest.mark.parametrize(
    ("created", "mark", "due"),
    [
        pytest.param(500, None, True, id="before-never-reconciled"),
        pytest.param(500, 1000, True, id="mark-in-the-lowering-ms"),
        pytest.param(500, 999, True, id="mark-before-the-lowering"),
        pytest.param(500, 1001, False, id="reconciled-since"),
        pytest.param(1000 + LIMITS_GRACE_MS - 1, None, True, id="within-the-grace"),
        pytest.param(1000 + LIMITS_GRACE_MS, None, False, id="after-the-grace"),
        pytest.param(2000, 1500, True, id="created-after-the-mark"),
        pytest.param(2000, 2001, False, id="reconciled-after-its-login"),
    ],
)
def test_reconcile_due(created: int, mark: int | None, due: bool) -> None:
    assert reconcile_due(created, 1000, mark) is due
    assert reconcile_due(created, 0, mark) is False  # never lowered


def test_a_bound_session_refuses_tokens_without_an_issue_time() -> None:
    bound = record()._replace(device_bound=True)
    assert refuses_token(bound, unbound_token=True)
    assert not refuses_token(bound, unbound_token=False)
    assert not refuses_token(record(), unbound_token=True)


def test_a_challenge_is_redeemable_once_within_five_minutes() -> None:
    now = 10 * CHALLENGE_MS
    assert redeemable({}, "c", now - CHALLENGE_MS, now)
    assert not redeemable({}, "c", now - CHALLENGE_MS - 1, now)
    assert redeemable({}, "c", now + CHALLENGE_MS, now)  # a clock ahead, within bounds
    assert not redeemable({}, "c", now + CHALLENGE_MS + 1, now)
    assert not redeemable({"c": now}, "c", now, now)
    assert still_used({"old": now - CHALLENGE_MS - 1, "new": now - 1}, now) == {"new": now - 1}


def test_the_package_re_exports_every_rule() -> None:
    """``from sessionguard.core import X`` reaches every public name each module of
    the package defines, as that very object (the modules are where the rules
    live; the package is how the rest of sessionguard reads them)."""
    import ast
    import importlib
    import pathlib

    import sessionguard.core as core

    for path in sorted(pathlib.Path(core.__file__).parent.glob("*.py")):
        if path.name == "__init__.py":
            continue
        module = importlib.import_module(f"sessionguard.core.{path.stem}")
        defined: list[str] = []
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                defined.append(node.name)
            elif isinstance(node, ast.Assign):
                defined += [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                defined.append(node.target.id)
        public = [name for name in defined if not name.startswith("_")]
        assert public, path.name
        for name in public:
            assert getattr(core, name, None) is getattr(module, name), f"core.{name} ({path.name})"
