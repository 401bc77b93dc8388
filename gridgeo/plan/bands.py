"""The workload band of a grid: how it is written, how many grids a village (part) gets
under it, and why a band cannot be met.

A band is ``FLOOR:CEILING`` (``300:500``) wherever it is text (the CLI's ``--band``,
``GRIDGEO_GRID_BAND``) and a pair of numbers wherever it is data (the API's JSON, a
plan's stored parameters, :func:`gridgeo.plan.divide`); :func:`parse_band` reads and
checks both, for every caller.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from gridgeo.errors import InternalError, InvalidInput

__all__ = ["DEFAULT_BAND", "grids_for", "parse_band", "split_count"]

#: The households band of a grid when nobody says otherwise (浙江: 300-500 households).
DEFAULT_BAND: tuple[float, float] = (300.0, 500.0)

_TEXT = re.compile(r"\s*([^:]+?)\s*:\s*([^:]+?)\s*")


def parse_band(value: str | Sequence[float]) -> tuple[float, float]:
    """A workload band as ``(floor, ceiling)`` floats.

    Parameters
    ----------
    value : str or pair of numbers
        ``"FLOOR:CEILING"`` (``"300:500"``) or ``(floor, ceiling)``.

    Raises
    ------
    InvalidInput
        Any other form, numbers that are not finite, or not ``0 <= floor <= ceiling``
        with ``ceiling > 0``. A ValueError, so settings and request models report it as
        their own validation error.
    """
    if isinstance(value, str):
        m = _TEXT.fullmatch(value)
        parts = m.groups() if m else None
    elif isinstance(value, Sequence) or hasattr(value, "__array__"):
        parts = list(value) if len(value) == 2 else None
        if parts is not None and any(isinstance(v, (str, bool)) for v in parts):
            parts = None
    else:
        parts = None
    try:
        lo, hi = (float(v) for v in parts) if parts is not None else (math.nan, math.nan)
    except (TypeError, ValueError):
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InvalidInput(f"band {value!r} is not FLOOR:CEILING (e.g. 300:500) "
                           "or a pair of finite numbers [floor, ceiling]")
    if not 0 <= lo <= hi or hi <= 0:
        raise InvalidInput(f"band {value!r}: need 0 <= floor <= ceiling and ceiling > 0")
    return lo, hi


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x - round(x)) < 1e-9 else f"{x:,.1f}"


def grids_for(workload: float, band: tuple[float, float], target: float | None = None
              ) -> tuple[int, str | None, str]:
    """The number of grids for ``workload`` under ``band``.

    Returns
    -------
    k : int
        The number of grids. Among the counts whose mean lies in the band, the one whose
        mean is closest to ``target`` (default: the middle of the band); when none does,
        the count whose mean comes closest to the band.
    problem : str or None
        Why no count fits the band, or None.
    rule : str
        ``"band"``, ``"below floor"`` (one grid) or ``"infeasible"``.
    """
    lo, hi = band
    target = (lo + hi) / 2 if target is None else target
    if workload <= 0 or workload < lo:
        return 1, None, "below floor"
    kmin = max(1, math.ceil(workload / hi - 1e-9))
    kmax = math.floor(workload / lo + 1e-9) if lo > 0 else max(kmin, math.ceil(workload / target) + 1)
    if kmin <= kmax:
        # The mean falls as the count grows: the best count is next to workload / target
        # (a tiny band can allow billions of counts, too many to try one by one).
        near = workload / target if target > 0 else kmax
        tries = {min(max(c, kmin), kmax) for c in (math.floor(near), math.ceil(near))}
        k = min(tries, key=lambda c: (abs(workload / c - target), c))
        return k, None, "band"
    k0 = max(kmax, 1)
    k1 = kmin
    # No count fits: the mean of kmax grids is above the ceiling, of kmax+1 below the floor.
    over = workload / k0 - hi
    under = lo - workload / k1
    k = k0 if over <= under else k1
    why = (f"{_fmt(workload)} cannot be split into grids of {_fmt(lo)}-{_fmt(hi)}: "
           f"{k0} grid(s) would average {_fmt(workload / k0)}, above {_fmt(hi)}; "
           f"{k1} would average {_fmt(workload / k1)}, below {_fmt(lo)}")
    return k, why, "infeasible"


def split_count(k: int, weights: list[float]) -> list[int]:
    """Share ``k`` grids among parts in proportion to ``weights``, at least one each."""
    m = len(weights)
    if k < m:
        raise InternalError(f"{k} grids cannot be shared among {m} parts")
    total = sum(weights)
    if total <= 0:
        base = [1] * m
        for j in range(k - m):
            base[j % m] += 1
        return base
    quota = [k * w / total for w in weights]
    out = [max(1, math.floor(q)) for q in quota]
    while sum(out) > k:
        j = max((j for j in range(m) if out[j] > 1), key=lambda j: out[j] - quota[j])
        out[j] -= 1
    while sum(out) < k:
        j = max(range(m), key=lambda j: quota[j] - out[j])
        out[j] += 1
    return out
