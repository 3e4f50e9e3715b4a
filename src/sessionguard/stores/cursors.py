"""Listing order and cursors, the same in every store: newest login first,
then by id; a cursor is the last listed session's ``<created ms>.<id>``."""

from __future__ import annotations

from ..core import Record


def newest_first(record: Record) -> tuple[int, str]:
    return (-record.created, record.id)


def cursor_of(record: Record) -> str:
    return f"{record.created}.{record.id}"


def cursor_after(cursor: str) -> tuple[int, str]:
    created, _, session_id = cursor.partition(".")
    try:
        return (-int(created), session_id)
    except ValueError:
        return (0, "")  # a malformed cursor restarts nothing: it lists from the top

