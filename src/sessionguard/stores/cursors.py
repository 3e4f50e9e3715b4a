"""Listing order and cursors, the same in every store: newest login first,
then by id; a cursor is the last listed session's ``<created ms>.<id>``. An
ended session (:class:`~.protocol.Ended`) takes its place by its record, so one
order and one cursor serve every ``status``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..core import Record
from .protocol import Ended, Page


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


def record_of(item: Record | Ended) -> Record:
    """The record a listing's item shows."""
    return item.record if isinstance(item, Ended) else item


def page_of(items: Sequence[Record | Ended], limit: int, cursor: str | None,
            shown: Callable[[list[Record | Ended]], list[Record | Ended]] = list) -> Page:
    """``limit`` of ``items`` after ``cursor`` in listing order, and the cursor of
    the next page (``None``: none); ``shown`` maps the page (a process's own
    unwritten uses laid over its records)."""
    found = sorted(items, key=lambda item: newest_first(record_of(item)))
    if cursor is not None:
        after = cursor_after(cursor)
        found = [item for item in found if newest_first(record_of(item)) > after]
    page = shown(found[:limit])
    more = len(found) > limit
    return Page(page, cursor_of(record_of(page[-1])) if more and page else None)
