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


#: ``ended_reason`` in words in a listing of ended sessions (the admin page, the CLI).
LISTED: Mapping[str, str] = {
    "idle_timeout": "Signed out after inactivity",
    "absolute_timeout": "Signed out at the maximum session lifetime",
    "evicted": "Signed out by a sign-in on another device (session limit)",
    "revoked": "Signed out by an administrator",
    "signed_out": "Signed out by the user",
    "signout_all": "Signed out when everyone was signed out",
}

#: The same for the user whose session it was (the self-service page).
LISTED_FOR_USER: Mapping[str, str] = {
    **LISTED,
    "absolute_timeout": "Signed out because the session reached its maximum lifetime",
    "evicted": "Signed out because you signed in on another device",
    "signed_out": "You signed out",
    "signout_all": "Signed out when an administrator signed out everyone",
}


def listed_text(reason: str) -> str:
    """``ended_reason`` of a listed ended session in words (the admin's view)."""
    return LISTED.get(reason, "Ended")


def reason_text(reason: str | None) -> str | None:
    """``ended_reason`` in words (``None`` when nothing ended)."""
    if reason is None:
        return None
    return REASONS.get(reason, "Your session ended; please sign in again.")
