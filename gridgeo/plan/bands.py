"""How many grids a village (part) gets, and why a band cannot be met."""

from __future__ import annotations

import math

__all__ = ["grids_for", "split_count"]


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
        raise ValueError("fewer grids than parts")
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
