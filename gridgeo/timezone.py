"""China Standard Time (UTC+8), the one local time of gridgeo.

Events are reported, numbered (``E`` + local day), placed on the plan in force on their
local day and counted in periods of whole local days; plans take effect on local dates.
Every such rule reads the zone and "today" from here. China has kept UTC+8 without
daylight saving since 1991, so a fixed offset is exact for every date gridgeo takes
(:data:`gridgeo.store.types.FIRST_DAY` onwards) and needs no time-zone database.
"""

from __future__ import annotations

import datetime as dt

__all__ = ["CHINA", "china_date", "today"]

#: China Standard Time, UTC+8 (named ``CST`` in ``strftime("%Z")``).
CHINA = dt.timezone(dt.timedelta(hours=8), "CST")


def today() -> dt.date:
    """Today's date in China: plans take effect on local dates."""
    return dt.datetime.now(CHINA).date()


def china_date(when: dt.datetime) -> dt.date:
    """The local (China) date of an aware timestamp."""
    return when.astimezone(CHINA).date()
