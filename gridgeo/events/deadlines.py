"""Deadlines (办理时限): in hours or in working days (工作日), extensions, overdue and the
early warning (临期预警). The one definition every caller uses: intake, actions, the
assessment's facts (按期结案率), lists, the sweeper and ``/metrics``.

Working days are the official calendar: Monday to Friday, less the State Council's public
holidays, plus its make-up working weekends (调休). The years ``chinesecalendar`` knows
come from it; a county overrides or extends them with a CSV file
(``GRIDGEO_HOLIDAYS_FILE``) of ``date,kind,note`` rows, ``kind`` being ``holiday`` or
``workday`` (the file wins over the package; years neither covers are plain weeks).

The rules:

- a deadline in **hours** is the reported time plus the hours (calendar hours);
- a deadline in **working days** N ends at 24:00 (China time) of the N-th working day after
  the day the event was reported (reported on a holiday or weekend, the count starts with
  the next working day just the same);
- an extension in **working days** moves the deadline's day forward that many working
  days, keeping its time of day; an extension in **hours** adds hours after that;
- an open event in :data:`~gridgeo.events.workflow.OVERDUE_STATES` past its deadline is
  **red** (overdue); **yellow** once it has used ``GRIDGEO_WARNING_SHARE`` of its time (in
  working time for a working-day deadline, in hours otherwise) or has less than
  ``GRIDGEO_WARNING_HOURS`` hours left; else **green**.

Everything is computed over numpy arrays of epoch seconds (``np.busday_offset`` and
``np.busday_count`` on a calendar whose weekmask is every day and whose "holidays" are the
days off), so that assessing a million events costs no Python loop per event.
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from gridgeo.errors import InvalidCalendar

__all__ = [
    "LEVELS",
    "WorkCalendar",
    "deadline",
    "deadline_seconds",
    "extend",
    "get_calendar",
    "warning_level",
    "warning_levels",
    "working_seconds",
]

#: The warning levels, with their labels.
LEVELS = {"green": "正常", "yellow": "临期", "red": "超期"}
#: The days the calendar holds (weekends outside the package's years are plain weekends).
FIRST_YEAR, LAST_YEAR = 2000, 2100
_OFFSET = 8 * 3600  # China time, gridgeo.timezone.CHINA (no daylight saving)
_DAY = 86400


@dataclass(frozen=True)
class WorkCalendar:
    """Which days are working days; ``busdaycal`` for numpy's business-day functions."""

    busdaycal: np.busdaycalendar
    #: Years the official calendar (package or file) covers.
    years: tuple[int, ...]
    source: str

    def is_workday(self, day: dt.date) -> bool:
        return bool(np.is_busday(np.datetime64(day, "D"), busdaycal=self.busdaycal))


def read_overrides(path: Path) -> tuple[dict[dt.date, str], dict[dt.date, str]]:
    """The county's file: ``date,kind,note`` (header first; kind ``holiday`` or ``workday``)."""
    holidays: dict[dt.date, str] = {}
    workdays: dict[dt.date, str] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise InvalidCalendar(f"holiday file {path}: {exc.strerror or exc}") from None
    for n, row in enumerate(rows, start=2):
        try:
            day = dt.date.fromisoformat((row.get("date") or "").strip())
        except ValueError:
            raise InvalidCalendar(f"holiday file {path}, line {n}: date must be YYYY-MM-DD, "
                                    f"not {row.get('date')!r}") from None
        kind = (row.get("kind") or "").strip()
        if kind not in ("holiday", "workday"):
            raise InvalidCalendar(f"holiday file {path}, line {n}: kind must be holiday or workday, "
                                    f"not {kind!r}")
        (holidays if kind == "holiday" else workdays)[day] = (row.get("note") or "").strip()
        (workdays if kind == "holiday" else holidays).pop(day, None)
    return holidays, workdays


def build_calendar(path: Path | None = None) -> WorkCalendar:
    """The official calendar from ``chinesecalendar``, overridden by the file at ``path``."""
    import chinese_calendar

    holidays = set(chinese_calendar.holidays)
    workdays = set(chinese_calendar.workdays)
    years = {d.year for d in holidays | workdays}
    source = f"chinesecalendar {chinese_calendar.__version__}"
    if path is not None:
        h, w = read_overrides(Path(path))
        holidays = (holidays - set(w)) | set(h)
        workdays = (workdays - set(h)) | set(w)
        years |= {d.year for d in h} | {d.year for d in w}
        source += f" + {path}"
    days = np.arange(np.datetime64(f"{FIRST_YEAR}-01-01"), np.datetime64(f"{LAST_YEAR + 1}-01-01"))
    weekend = np.isin((days.astype(np.int64) + 3) % 7, (5, 6))  # 1970-01-01 was a Thursday
    off = weekend | np.isin(days, np.array(sorted(holidays), dtype="datetime64[D]"))
    off &= ~np.isin(days, np.array(sorted(workdays), dtype="datetime64[D]"))
    cal = np.busdaycalendar(weekmask="1111111", holidays=days[off])
    return WorkCalendar(cal, tuple(sorted(years)), source)


@lru_cache(maxsize=4)
def _calendar(path: str | None) -> WorkCalendar:
    return build_calendar(Path(path) if path else None)


def get_calendar() -> WorkCalendar:
    """The calendar of the settings' holiday file (built once per file)."""
    from gridgeo.config import get_settings

    path = get_settings().holidays_file
    return _calendar(str(path) if path else None)


def _days(seconds: np.ndarray) -> np.ndarray:
    """China-time day of each epoch second, as datetime64[D]."""
    return np.floor_divide(seconds + _OFFSET, _DAY).astype(np.int64).astype("datetime64[D]")


def _start(days: np.ndarray) -> np.ndarray:
    """Epoch seconds of 00:00 China time of each day."""
    return days.astype(np.int64).astype(float) * _DAY - _OFFSET


def _floats(x, n: int) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    return np.broadcast_to(a, (n,)).astype(float) if a.ndim == 0 else a.astype(float, copy=False)


def deadline_seconds(reported, hours=np.nan, workdays=np.nan, extended_hours=0.0, extended_days=0.0,
                     calendar: WorkCalendar | None = None) -> np.ndarray:
    """Deadlines (epoch seconds) of many events at once; NaN where neither hours nor
    working days are known.

    Parameters
    ----------
    reported : array of epoch seconds
    hours, workdays : arrays (or scalars)
        The deadline in hours or, where not NaN, in working days (which then wins).
    extended_hours, extended_days : arrays (or scalars)
        Approved extensions (0 or NaN: none).
    """
    cal = (calendar or get_calendar()).busdaycal
    reported = np.asarray(reported, dtype=float)
    n = reported.shape[0] if reported.ndim else 1
    reported = reported.reshape(n)
    hours, workdays = _floats(hours, n), _floats(workdays, n)
    ext_h = np.nan_to_num(_floats(extended_hours, n))
    ext_d = np.nan_to_num(_floats(extended_days, n))
    out = reported + 3600.0 * hours
    wd = np.isfinite(workdays) & np.isfinite(reported)
    if wd.any():
        due = np.busday_offset(_days(reported[wd]), workdays[wd].astype(np.int64), roll="backward",
                               busdaycal=cal)
        out[wd] = _start(due + 1)
    ext = (ext_d > 0) & np.isfinite(out)
    if ext.any():
        out[ext] = _shift_workdays(out[ext], ext_d[ext], cal)
    return out + 3600.0 * ext_h


def _shift_workdays(seconds: np.ndarray, days: np.ndarray, cal: np.busdaycalendar) -> np.ndarray:
    """Move each moment forward ``days`` working days, keeping its time of day (a moment at
    24:00 belongs to the day it ends)."""
    day = _days(seconds - 1.0)
    moved = np.busday_offset(day, days.astype(np.int64), roll="backward", busdaycal=cal)
    return seconds + (moved - day).astype(np.int64) * float(_DAY)


def working_seconds(start, end, calendar: WorkCalendar | None = None) -> np.ndarray:
    """Seconds between ``start`` and ``end`` (epoch seconds, arrays) that fall on working
    days; negative when ``end`` is before ``start``."""
    cal = (calendar or get_calendar()).busdaycal
    a = np.asarray(start, dtype=float)
    b = np.asarray(end, dtype=float)
    a, b = np.broadcast_arrays(a, b)
    sign = np.where(b < a, -1.0, 1.0)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    ok = np.isfinite(lo) & np.isfinite(hi)
    lo, hi = np.where(ok, lo, 0.0), np.where(ok, hi, 0.0)
    da, db = _days(lo), _days(hi)
    work_a = np.is_busday(da, busdaycal=cal)
    work_b = np.is_busday(db, busdaycal=cal)
    same = da == db
    whole = np.busday_count(da + 1, np.maximum(db, da + 1), busdaycal=cal) * float(_DAY)
    first = np.where(work_a, _start(da + 1) - lo, 0.0)
    last = np.where(work_b, hi - _start(db), 0.0)
    total = np.where(same, np.where(work_a, hi - lo, 0.0), whole + first + last)
    return np.where(ok, sign * total, np.nan)


def warning_levels(now, reported, deadline, workday_based, overdue_able, *, share: float | None = None,
                   hours_left: float | None = None, calendar: WorkCalendar | None = None) -> np.ndarray:
    """Green / yellow / red of many events at ``now`` (epoch seconds, scalar or array).

    ``workday_based`` says which deadlines count working time; ``overdue_able`` which
    events can be late at all (open, not resolved): the others are green. Share and hours
    default to the settings (``GRIDGEO_WARNING_SHARE``, ``GRIDGEO_WARNING_HOURS``).
    """
    if share is None or hours_left is None:
        from gridgeo.config import get_settings

        s = get_settings()
        share = s.warning_share if share is None else share
        hours_left = s.warning_hours if hours_left is None else hours_left
    reported = np.asarray(reported, dtype=float)
    deadline = np.asarray(deadline, dtype=float)
    now = np.broadcast_to(np.asarray(now, dtype=float), reported.shape)
    wd = np.asarray(workday_based, dtype=bool)
    able = np.asarray(overdue_able, dtype=bool) & np.isfinite(deadline)
    total = np.where(wd, working_seconds(reported, deadline, calendar), deadline - reported)
    used = np.where(wd, working_seconds(reported, now, calendar), now - reported)
    left = np.where(wd, working_seconds(now, deadline, calendar), deadline - now)
    with np.errstate(invalid="ignore", divide="ignore"):
        yellow = (used >= share * total) | (left < 3600.0 * hours_left)
    red = able & (now > deadline)
    return np.where(red, "red", np.where(able & yellow, "yellow", "green")).astype(object)


# -- one event ------------------------------------------------------------------------------


def warning_level(now: dt.datetime, reported_at: dt.datetime | None, deadline_at: dt.datetime | None,
                  workday_based: bool, overdue_able: bool) -> str:
    """One event's level (:func:`warning_levels` of one, without arrays where none are needed)."""
    if not overdue_able or deadline_at is None or reported_at is None:
        return "green"
    if now > deadline_at:
        return "red"
    if not workday_based:
        from gridgeo.config import get_settings

        s = get_settings()
        total = (deadline_at - reported_at).total_seconds()
        used = (now - reported_at).total_seconds()
        left = (deadline_at - now).total_seconds()
        return "yellow" if used >= s.warning_share * total or left < 3600.0 * s.warning_hours else "green"
    return warning_levels(now.timestamp(), [reported_at.timestamp()], [deadline_at.timestamp()],
                          [True], [True])[0]



def _epoch(t: dt.datetime) -> float:
    return t.timestamp()


def _moment(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(round(float(seconds), 6), dt.timezone.utc)


def deadline(reported_at: dt.datetime, hours: int | None, extended_hours: int = 0, *,
             workdays: int | None = None, extended_days: int = 0) -> dt.datetime:
    """One event's deadline (:func:`deadline_seconds` of one; in hours without arrays)."""
    if workdays is None and not extended_days:
        return reported_at + dt.timedelta(hours=int(hours) + int(extended_hours or 0))
    s = deadline_seconds([_epoch(reported_at)], np.nan if hours is None else hours,
                         np.nan if workdays is None else workdays, extended_hours or 0,
                         extended_days or 0)[0]
    return _moment(s)


def extend(current: dt.datetime, *, hours: int = 0, days: int = 0) -> dt.datetime:
    """``current`` moved forward ``days`` working days, then ``hours`` hours."""
    s = np.array([_epoch(current)])
    if days:
        s = _shift_workdays(s, np.array([days]), get_calendar().busdaycal)
    return _moment(s[0] + 3600.0 * hours)
