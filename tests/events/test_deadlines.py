"""Deadlines in working days across National Day and the Spring Festival (with their make-up
working weekends), the county's override file, extensions and the early warning."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from gridgeo.errors import InvalidCalendar
from gridgeo.events.deadlines import (
    build_calendar,
    deadline,
    deadline_seconds,
    extend,
    warning_levels,
    working_seconds,
)
from gridgeo.timezone import CHINA


def at(y, m, d, h=0, mi=0):
    return dt.datetime(y, m, d, h, mi, tzinfo=CHINA)


def test_national_day_2026():
    # 2026: 10-01..10-07 off; Sunday 09-20 and Saturday 10-10 are make-up working days.
    # Reported Wednesday 09-30: day 1 is Thursday 10-08, day 2 Friday 10-09, day 3 Saturday 10-10.
    assert deadline(at(2026, 9, 30, 15), None, workdays=1) == at(2026, 10, 9)
    assert deadline(at(2026, 9, 30, 15), None, workdays=3) == at(2026, 10, 11)
    # Reported during the holiday: the count starts with the next working day.
    assert deadline(at(2026, 10, 3, 9), None, workdays=1) == at(2026, 10, 9)
    # Reported Saturday 09-19: the make-up Sunday 09-20 is working day 1.
    assert deadline(at(2026, 9, 19, 11), None, workdays=1) == at(2026, 9, 21)
    # Hours are calendar hours, holidays or not.
    assert deadline(at(2026, 9, 30, 15), 72) == at(2026, 10, 3, 15)


def test_spring_festival_2026():
    # 2026: 02-15..02-23 off; Saturdays 02-14 and 02-28 are working days.
    assert deadline(at(2026, 2, 13, 10), None, workdays=1) == at(2026, 2, 15)  # Saturday 02-14 works
    assert deadline(at(2026, 2, 14, 10), None, workdays=1) == at(2026, 2, 25)  # next: Tuesday 02-24
    assert deadline(at(2026, 2, 14, 10), None, workdays=5) == at(2026, 3, 1)   # 24,25,26,27,Sat 28


def test_vectorised_equals_one_by_one_and_extensions():
    rep = np.array([at(2026, 9, 30, 15).timestamp(), at(2026, 2, 14, 10).timestamp(), np.nan,
                    at(2026, 6, 1, 8).timestamp()])
    got = deadline_seconds(rep, hours=[np.nan, np.nan, 24, 48], workdays=[3, 5, np.nan, np.nan],
                           extended_hours=[0, 2, 0, 0], extended_days=[1, 0, 0, 1])
    # 10-11 00:00 (end of Saturday 10-10) + 1 working day: the end of Monday 10-12
    assert got[0] == at(2026, 10, 13).timestamp()
    assert got[1] == at(2026, 3, 1, 2).timestamp()
    assert np.isnan(got[2])
    # 06-03 08:00 (Wednesday) + 1 working day, same time: Thursday 06-04 08:00
    assert got[3] == at(2026, 6, 4, 8).timestamp()
    assert extend(at(2026, 9, 30, 12), days=1) == at(2026, 10, 8, 12)
    assert extend(at(2026, 9, 30, 12), hours=5) == at(2026, 9, 30, 17)


def test_working_seconds_skip_the_holiday():
    h = 3600.0
    w = working_seconds([at(2026, 9, 30, 12).timestamp(), at(2026, 10, 8, 6).timestamp()],
                        [at(2026, 10, 8, 12).timestamp(), at(2026, 10, 8, 18).timestamp()])
    assert w.tolist() == [24 * h, 12 * h]


def test_override_file_covers_a_year_the_package_does_not(tmp_path):
    # chinesecalendar 1.11 knows up to 2026; the county writes 2027's National Day.
    f = tmp_path / "holidays.csv"
    f.write_text("date,kind,note\n" + "".join(f"2027-10-0{d},holiday,国庆节\n" for d in range(1, 8))
                 + "2027-09-26,workday,国庆节调休\n2027-10-09,workday,国庆节调休\n", encoding="utf-8")
    cal = build_calendar(f)
    assert 2027 in cal.years and not cal.is_workday(dt.date(2027, 10, 4))
    assert cal.is_workday(dt.date(2027, 9, 26)) and cal.is_workday(dt.date(2027, 10, 9))
    got = deadline_seconds([at(2027, 9, 30, 9).timestamp()], workdays=[2], calendar=cal)
    assert got[0] == at(2027, 10, 10).timestamp()  # Friday 10-08, make-up Saturday 10-09
    # the file also overrides the package: a county holiday on a 2026 working day
    f.write_text("date,kind,note\n2026-06-01,holiday,县里放假\n", encoding="utf-8")
    assert not build_calendar(f).is_workday(dt.date(2026, 6, 1))


@pytest.mark.parametrize("text, where", [
    ("date,kind\n2027-13-01,holiday\n", "line 2: date"),
    ("date,kind\n2027-10-01,feast\n", "line 2: kind"),
    ("date,kind\n" + "x" * 200 + ",holiday\n", "line 2: date"),
])
def test_override_file_refused_with_line(tmp_path, text, where):
    f = tmp_path / "h.csv"
    f.write_text(text)
    with pytest.raises(InvalidCalendar, match=where):
        build_calendar(f)
    with pytest.raises(InvalidCalendar, match="holiday file"):
        build_calendar(tmp_path / "missing.csv")


def test_warning_levels():
    rep = at(2026, 9, 30, 8).timestamp()
    due = deadline_seconds([rep], workdays=[4])[0]  # end of Monday 10-12 (08, 09, Sat 10, 12)
    now = np.array([at(2026, 10, 2, 12).timestamp(),   # holiday: 16 h used of 112 working hours
                    at(2026, 10, 12, 1).timestamp(),   # 89 h of 112 used: yellow at 75 %
                    at(2026, 10, 13, 0, 1).timestamp()])
    lv = warning_levels(now, np.full(3, rep), np.full(3, due), np.ones(3, bool), np.ones(3, bool),
                        share=0.75, hours_left=0)
    assert lv.tolist() == ["green", "yellow", "red"]
    # closed events are never yellow or red; hours left turn yellow earlier
    assert warning_levels(now, np.full(3, rep), np.full(3, due), np.ones(3, bool), np.zeros(3, bool),
                          share=0.75, hours_left=0).tolist() == ["green"] * 3
    assert warning_levels(now[:1], [rep], [due], [True], [True], share=0.99, hours_left=100).tolist() == ["yellow"]
