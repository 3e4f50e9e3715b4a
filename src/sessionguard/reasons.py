"""``ended_reason`` in words, for the person whose session ended: shown by the
demo, the examples and the admin API's ``401`` answer (which ``expiry.js``
and the admin pages display)."""

from __future__ import annotations

from collections.abc import Mapping

#: ``ended_reason`` in words.
REASONS: Mapping[str, str] = {
    "idle_timeout": "You were signed out because you were inactive for too long.",
    "absolute_timeout": "You were signed out because your session reached its maximum lifetime;"
    " please sign in again.",
    "evicted": "You were signed out because you signed in on another device.",
    "revoked": "You were signed out by an administrator.",
    "signed_out": "This session was signed out (from here or from another of your devices).",
    "signout_all": "You were signed out because an administrator signed out everyone.",
    "invalid": "Your session was not recognised; please sign in again.",
}


def reason_text(reason: str | None) -> str | None:
    """``ended_reason`` in words (``None`` when nothing ended)."""
    if reason is None:
        return None
    return REASONS.get(reason, "Your session ended; please sign in again.")
