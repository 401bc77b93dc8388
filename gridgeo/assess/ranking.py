"""Rankings of assessed units: a minimum volume, a stated order, a stated tie-break."""

from __future__ import annotations

import numpy as np
import pandas as pd

from gridgeo.assess.indicators import LABELS
from gridgeo.assess.periods import InvalidQuery
from gridgeo.config import get_settings

__all__ = ["RANKABLE", "rank"]

#: Indicator -> (volume column, higher is better). The volume is the indicator's
#: denominator: what a unit needs enough of for its figure to mean something.
RANKABLE = {
    "on_time_rate": ("due", True),
    "closure_rate": ("due", True),
    "rework_rate": ("due", False),
    "extension_rate": ("due", False),
    "acceptance_rate": ("received", True),
    "dispatch_rate": ("accepted", True),
    "satisfaction_mean": ("rated", True),
    "satisfied_rate": ("rated", True),
    "hours_to_close_mean": ("closed", False),
    "hours_to_close_p90": ("closed", False),
}

#: Indicator values closer than this are equal (rates are ratios of small integers).
_EPS = 1e-9


def rank(table: pd.DataFrame, indicator: str = "on_time_rate", *, min_volume: int | None = None) -> pd.DataFrame:
    """Rank the units of an assessment table (:func:`gridgeo.assess.assess`) by ``indicator``.

    Only units with at least ``min_volume`` events in the indicator's denominator
    (:data:`RANKABLE`: due events for the closure rates, received for 立案率, accepted
    for 派遣率, rated for satisfaction, closed for times) and a value are ranked; the
    others follow, unranked, with the reason. The row of events in no unit (code None)
    is never ranked. Ranks are 1, 2, 3 ... without gaps: units with the same value (to
    1e-9) are ordered by volume, more first, then by code, and marked ``tied``.

    Parameters
    ----------
    table : DataFrame
        An assessment table (English column names).
    indicator : str
        A key of :data:`RANKABLE`.
    min_volume : int, optional
        Default ``GRIDGEO_RANKING_MIN_VOLUME`` (20).

    Returns
    -------
    pandas.DataFrame
        ``table``'s rows, ranked ones first in rank order, with ``rank`` (Int64, NA when
        unranked), ``volume``, ``eligible``, ``tied`` and ``note`` (why a unit is not
        ranked). ``attrs`` adds ``indicator``, ``min_volume``, ``explanation`` and
        ``explanation_zh``, the rule in words.

    Raises
    ------
    InvalidQuery
        (422) An indicator that cannot be ranked, or a negative minimum volume.
    """
    if indicator not in RANKABLE:
        raise InvalidQuery(f"cannot rank by {indicator!r}: use one of {', '.join(RANKABLE)}")
    min_volume = get_settings().ranking_min_volume if min_volume is None else int(min_volume)
    if min_volume < 0:
        raise InvalidQuery(f"min_volume must not be negative, not {min_volume}")
    volume_col, higher = RANKABLE[indicator]
    value = pd.to_numeric(table[indicator], errors="coerce").to_numpy(dtype=float)
    volume = table[volume_col].to_numpy(dtype=np.int64)
    codes = pd.Series(table.index, dtype=object)
    is_unit = codes.notna().to_numpy()
    enough = volume >= min_volume
    has_value = np.isfinite(value)
    eligible = is_unit & enough & has_value
    # Sort key: the value (better first), volume (more first), code.
    rounded = np.round(np.where(has_value, value, 0.0) / _EPS) * _EPS
    primary = -rounded if higher else rounded
    code_text = codes.fillna("").astype(str).to_numpy()
    order = np.lexsort((code_text, -volume, primary, ~eligible))
    out = table.iloc[order].copy()
    elig = eligible[order]
    ranks = np.full(len(out), -1, dtype=np.int64)
    ranks[elig] = np.arange(1, elig.sum() + 1)
    out.insert(0, "rank", pd.array(np.where(elig, ranks, 0), dtype="Int64"))
    out.loc[~elig, "rank"] = pd.NA
    out["volume"] = volume[order]
    out["eligible"] = elig
    r = rounded[order]
    same_prev = np.r_[False, (r[1:] == r[:-1]) & elig[1:] & elig[:-1]]
    same_next = np.r_[(r[1:] == r[:-1]) & elig[1:] & elig[:-1], False]
    out["tied"] = same_prev | same_next
    note = np.full(len(out), "", dtype=object)
    label = LABELS.get(volume_col, volume_col)
    note[~enough[order]] = [f"{v} {volume_col} < {min_volume}（{label}不足{min_volume}）" for v in volume[order][~enough[order]]]
    note[enough[order] & ~has_value[order]] = "no value（无数据）"
    note[~is_unit[order]] = "not a unit（未落入网格或未分派）"
    out["note"] = note
    direction = "higher is better" if higher else "lower is better"
    zh_dir = "高者在前" if higher else "低者在前"
    name_zh = LABELS.get(indicator, indicator)
    out.attrs.update(
        dict(table.attrs),
        indicator=indicator,
        min_volume=min_volume,
        explanation=(
            f"Ranked by {indicator} ({direction}) among units with at least {min_volume} "
            f"{volume_col} events (the indicator's denominator); units with the same {indicator} "
            f"are ordered by {volume_col} (more first), then by code; ranks run 1, 2, 3 ... "
            f"without gaps. {int(elig.sum())} of {int(is_unit.sum())} units ranked."
        ),
        explanation_zh=(
            f"按{name_zh}排名（{zh_dir}），仅{label}不少于{min_volume}件的单位参与排名；"
            f"{name_zh}相同的，{label}多者在前，再按编码排序；名次连续不并列。"
            f"共{int(is_unit.sum())}个单位，{int(elig.sum())}个参与排名。"
        ),
    )
    return out
