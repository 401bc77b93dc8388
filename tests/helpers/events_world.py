"""The events township: the tiny township (:mod:`helpers.tiny`: two villages, four grids,
five households, staff) with a catalogue that exercises every routing rule.

The ``world`` fixture (tests/conftest.py) loads it into ``store`` on each database.
"""

from __future__ import annotations

import datetime as dt

from gridgeo.events.intake import EventIn
from gridgeo.io import import_files
from gridgeo.store import Store
from helpers.tiny import D, V1, V2, X0, Y0

CST = dt.timezone(dt.timedelta(hours=8))
G11, G12, G21, G22 = V1 + "001", V1 + "002", V2 + "001", V2 + "002"

CATEGORIES = (
    "code,name,platform,department,deadline_hours,major,description\n"
    "ZZ001,邻里纠纷,stability,综治办,72,false,\n"
    "ZZ002,婚姻家庭纠纷,stability,司法所,72,false,\n"
    "ZZ009,群体性事件,stability,派出所,24,true,\n"
    "ZF001,违章搭建,enforcement,综合行政执法中队,120,false,\n"
    "SC001,食品安全,market,市场监管所,48,false,\n"
    "BM001,社保咨询,service,人力社保所,24,false,\n"
)

#: A point inside each grid (WGS84).
INSIDE = {G11: (X0 + 0.002, Y0 + 0.003), G12: (X0 + 0.007, Y0 + 0.006),
          G21: (X0 + 0.012, Y0 + 0.004), G22: (X0 + 0.018, Y0 + 0.007)}


def load_world(store: Store, tiny: dict) -> Store:
    """Import the tiny township (files of :func:`helpers.tiny.make_tiny`) into ``store``:
    plan v1 from 2024-01-01, with CATEGORIES."""
    cats = tiny["dir"] / "categories.csv"
    cats.write_text(CATEGORIES, encoding="utf-8")
    import_files(store, [tiny["gpkg"], tiny["staff"], cats], plan_version="v1",
                 effective_from=dt.date(2024, 1, 1))
    return store


def event(category="ZZ001", source="app", at=None, **kw) -> EventIn:
    """An event reported ``at`` (default: an hour ago) inside grid G11 unless told otherwise."""
    if "lon" not in kw and "address" not in kw and not kw.pop("nowhere", False):
        kw["lon"], kw["lat"] = INSIDE[G11]
    when = at or dt.datetime.now(CST) - dt.timedelta(hours=1)
    return EventIn(source=source, category_code=category, reported_at=when, **kw)


__all__ = ["CATEGORIES", "CST", "D", "G11", "G12", "G21", "G22", "INSIDE", "V1", "V2", "X0", "Y0", "event", "load_world"]
