"""The sign-out of everyone: its :class:`Epoch` and the epoch the next one sets.

- **sign-out of everyone** records an epoch (a moment, on the store's clock):
  a session created before it has ended unless it is the one the sign-out
  kept (:func:`~.timeouts.judge` applies it). A moment rather than a counter,
  so that a login on a server whose cached epoch is a little stale is not
  ended by it;
- an ended session never comes back: a new sign-out keeps a session only if
  the last one had not ended it (:func:`epoch_after`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .values import Record


@dataclass(frozen=True, slots=True)
class Epoch:
    """The last sign-out of everyone: sessions created before ``at`` (ms) have
    ended, except ``keep``."""

    at: int = 0
    keep: str | None = None


def epoch_after(now: int, keep: Record | None, last: Epoch) -> Epoch:
    """The epoch a sign-out of everyone at ``now`` sets: every session created
    up to and including ``now`` ends, except ``keep``, unless the ``last``
    sign-out ended that one already (an ended session never comes back: the
    new epoch replaces the old one, which alone remembered that ending)."""
    if keep is not None and keep.created < last.at and keep.id != last.keep:
        keep = None
    return Epoch(now + 1, None if keep is None else keep.id)
