"""SQL building blocks shared by every query of user-supplied text."""

from __future__ import annotations

from sqlalchemy import ColumnElement

__all__ = ["contains", "starts_with"]


def starts_with(column, prefix: str) -> ColumnElement[bool]:
    """``column`` begins with ``prefix``, taken literally.

    A prefix filter becomes ``LIKE 'prefix%'``: left as it is, a ``%`` or ``_`` typed by a
    user is a wildcard there (``village=%`` would match every event). The prefix is
    escaped (``ESCAPE '/'``, the same on SQLite and PostgreSQL), so it only ever matches
    itself. Every user-supplied string that reaches LIKE goes through here.
    """
    return column.startswith(str(prefix), autoescape=True)


def contains(column, text: str) -> ColumnElement[bool]:
    """``column`` holds ``text`` somewhere, taken literally (escaped as in :func:`starts_with`)."""
    return column.contains(str(text), autoescape=True)
