"""The duration syntax of the settings, shared with the CLI and the admin
API: whole seconds for timeouts (``900``, ``15m``, ``2h``, ``7d``, ``never``)
and fractional ones for the store's timings (``250ms``, ``200us``)."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from fractions import Fraction

MAX_DURATION = 36500 * 86400  # 100 years: later date arithmetic cannot overflow

_UNITS = {"us": Fraction(1, 1_000_000), "ms": Fraction(1, 1000), "s": Fraction(1), "m": Fraction(60),
          "h": Fraction(3600), "d": Fraction(86400)}  # fmt: skip
_NUMBER = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(us|ms|[smhd])?", re.ASCII | re.IGNORECASE)
_DURATION = "use seconds such as 900, or 15m, 2h, 7d, or never"


def duration(value: object) -> int | None:
    """Whole positive seconds or ``None``; raises ``ValueError(accepted forms)``."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "never"):
        return None
    if isinstance(value, timedelta):
        seconds: Fraction = Fraction(value // timedelta(microseconds=1), 1_000_000)
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = Fraction(value)
    elif isinstance(value, str) and (match := _NUMBER.fullmatch(value.strip())):
        number, unit = match.group(1), (match.group(2) or "").lower()
        if (not unit and "." in number) or unit in ("ms", "us"):
            raise ValueError(f"is not a duration ({_DURATION})")
        seconds = Fraction(number) * _UNITS[unit or "s"]
    else:
        raise ValueError(f"is not a duration ({_DURATION})")
    if seconds.denominator != 1:
        raise ValueError(f"is not a whole number of seconds ({_DURATION})")
    if seconds <= 0:
        raise ValueError(
            "is not a positive duration (use a duration such as 900, 15m, 2h, 7d, or never for no limit)"
        )
    if seconds > MAX_DURATION:
        raise ValueError(f"is too long (use at most {MAX_DURATION // 86400}d, or never)")
    return int(seconds)


def bounded(value: object, low: int, high: int, *, tail: str) -> int:
    """Whole seconds from ``low`` to ``high`` (``never`` is not one);
    raises ``ValueError(tail)``."""
    try:
        seconds = duration(value)
    except ValueError:
        raise ValueError(tail) from None
    if seconds is None or not low <= seconds <= high:
        raise ValueError(tail)
    return seconds


def parse_duration(text: str) -> int | None:
    """Parse a duration as the environment writes it.

    Plain seconds (``"90"``), a number with a unit ``s``, ``m``, ``h`` or ``d``
    (``"30m"``, ``"1.5h"``; the result must be whole seconds) or ``"never"``
    (``None``). Case and surrounding whitespace do not matter. Zero and values
    over 100 years are refused.

    :raises ValueError: naming the value and the accepted forms.
    """
    try:
        return duration(text)
    except ValueError as exc:
        raise ValueError(f"{show(text)} {exc}") from None


def format_duration(seconds: int | None) -> str:
    """The shortest exact form: ``86400`` → ``"1d"``, ``5400`` → ``"90m"``,
    ``None`` → ``"never"``. :func:`parse_duration` reads it back."""
    if seconds is None:
        return "never"
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise ValueError(f"{seconds!r} is not a number of seconds")
    for unit in ("d", "h", "m"):
        size = int(_UNITS[unit])
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration_choices(value: object) -> tuple[int | None, ...]:
    """A non-empty list of durations (``None`` for ``never``), comma-separated
    in the environment, in the order given and without repeats."""
    items = value.split(",") if isinstance(value, str) else value
    tail = "use comma-separated durations such as never,10m,30m,1h,8h"
    if not isinstance(items, list | tuple):
        raise ValueError(f"is not a list of durations ({tail})")
    choices: list[int | None] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            seconds = duration(item)
        except ValueError:
            raise ValueError(f"has {show(item)}, which is not a duration ({tail})") from None
        if seconds not in choices:
            choices.append(seconds)
    if not choices:
        raise ValueError(f"is empty ({tail})")
    return tuple(choices)


def interval(value: object, *, tail: str) -> float:
    """Finite non-negative seconds, fractions allowed, units ``ms s m h d``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _NUMBER.fullmatch(value.strip())):
        unit = (match.group(2) or "s").lower()
        seconds = float(Fraction(match.group(1)) * _UNITS[unit])
    else:
        raise ValueError(tail)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(tail)
    return seconds


def interval_or_off(value: object, *, tail: str) -> float:
    """As :func:`interval`; unset or ``off`` is 0."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "off"):
        return 0.0
    return interval(value, tail=tail)


def show(value: object) -> str:
    """``value`` as an error message quotes it (cut at 80 characters)."""
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."
