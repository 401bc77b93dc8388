"""Reporting periods: runs of whole local (China Standard Time) days.

``2026`` is a year, ``2026-Q3`` a quarter, ``2026-07`` a month, ``2026-07-15`` a day,
and ``A/B`` runs from the start of ``A`` to the end of ``B`` (``2025-10/2026-09``).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import func, select

from gridgeo.errors import GridgeoError
from gridgeo.store.types import FIRST_DAY, LAST_DAY, in_time_range
from gridgeo.timezone import CHINA as CST

__all__ = ["CST", "InvalidPeriod", "InvalidQuery", "Period", "default_period", "parse_period"]



class InvalidQuery(GridgeoError, ValueError):
    """A period, grouping, platform, village or indicator that cannot be read or is not known."""

    status = 422
    code = "invalid-query"


class InvalidPeriod(InvalidQuery):
    """A period that cannot be read."""

    code = "invalid-period"


@dataclass(frozen=True)
class Period:
    """A run of whole local days, ``start`` to ``end`` inclusive."""

    start: dt.date
    end: dt.date

    def __post_init__(self):
        if self.end < self.start:
            raise InvalidPeriod(f"period ends ({self.end}) before it starts ({self.start})")
        if not (in_time_range(self.start) and in_time_range(self.end)):
            raise InvalidPeriod(f"period {self.label} must fall between {FIRST_DAY} and {LAST_DAY}")

    @property
    def label(self) -> str:
        """``2025-10-01/2026-09-30``."""
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """Start (inclusive) and end (exclusive) as timezone-aware UTC datetimes."""
        start = dt.datetime.combine(self.start, dt.time(), CST)
        end = dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), CST)
        return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)

    def steps(self) -> list[Period]:
        """The period cut into calendar months (over 62 days), runs of 7 days from the
        start (over 14 days) or days; the first and last step are clipped to the period."""
        if self.days > 62:
            starts = pd.date_range(self.start.replace(day=1), self.end, freq="MS")
        elif self.days > 14:
            starts = pd.date_range(self.start, self.end, freq="7D")
        else:
            starts = pd.date_range(self.start, self.end, freq="D")
        firsts = [max(d.date(), self.start) for d in starts]
        lasts = [d - dt.timedelta(days=1) for d in firsts[1:]] + [self.end]
        return [Period(a, b) for a, b in zip(firsts, lasts)]

    def as_dict(self) -> dict:
        """``{"start", "end", "label"}`` with ISO dates (for JSON answers)."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "label": self.label}

    def __str__(self) -> str:
        return self.label


_YEAR = re.compile(r"(\d{4})")
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")
_QUARTER = re.compile(r"(\d{4})-?[Qq]([1-4])")
_DAY = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")


def _one(text: str) -> Period:
    text = text.strip()
    try:
        if m := _DAY.fullmatch(text):
            d = dt.date(int(m[1]), int(m[2]), int(m[3]))
            return Period(d, d)
        if m := _MONTH.fullmatch(text):
            first = dt.date(int(m[1]), int(m[2]), 1)
            return Period(first, (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date())
        if m := _QUARTER.fullmatch(text):
            first = dt.date(int(m[1]), 3 * int(m[2]) - 2, 1)
            return Period(first, (pd.Timestamp(first) + pd.offsets.QuarterEnd(0)).date())
        if m := _YEAR.fullmatch(text):
            return Period(dt.date(int(m[1]), 1, 1), dt.date(int(m[1]), 12, 31))
    except ValueError as exc:
        raise InvalidPeriod(f"period {text!r}: {exc}") from None
    raise InvalidPeriod(
        f"period {text!r} is not a year (2026), quarter (2026-Q1), month (2026-03), "
        "day (2026-03-05) or a range of them (2025-10/2026-09)"
    )


def parse_period(text: str | Period) -> Period:
    """Read a period: ``2026``, ``2026-Q1``, ``2026-03``, ``2026-03-05``, or ``A/B``.

    ``A/B`` runs from the start of ``A`` to the end of ``B``, each in any of the other
    forms: ``2025-10/2026-09`` is the twelve months October 2025 to September 2026.

    Raises
    ------
    InvalidPeriod
        (422) Text in none of these forms, or a range that ends before it starts.
    """
    if isinstance(text, Period):
        return text
    if text is None or not str(text).strip():
        raise InvalidPeriod("no period given: use e.g. 2026, 2026-Q3, 2026-07 or 2025-10/2026-09")
    first, sep, last = str(text).partition("/")
    if not sep:
        return _one(first)
    return Period(_one(first).start, _one(last).end)


def default_period(store) -> Period:
    """The twelve months up to the month of the latest event (or of today, with none)."""
    from gridgeo.store import schema

    with store.engine.connect() as conn:
        latest = conn.execute(select(func.max(schema.events.c.reported_at))).scalar()
    last = (latest.astimezone(CST).date() if latest is not None
            else dt.datetime.now(CST).date())
    end = (pd.Timestamp(last) + pd.offsets.MonthEnd(0)).date()
    start = (pd.Timestamp(last.replace(day=1)) - pd.DateOffset(months=11)).date()
    return Period(start, end)
