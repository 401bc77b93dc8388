"""Assessment, workload and coverage tables as JSON records, CSV and spreadsheets.

CSV and XLSX go through :func:`gridgeo.io.exporting.neutralise_formulas`, like every
export a spreadsheet opens: unit and category names are edited by people.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from gridgeo.assess.indicators import GROUPINGS, LABELS, RATES
from gridgeo.io.exporting import neutralise_formulas

__all__ = ["records", "to_csv", "to_xlsx", "rounded"]

_RATES = set(RATES)
_HOURS = {"hours_to_close_mean", "hours_to_close_p90", "per_worker", "per_100_households", "events_share",
          "area_km2", "covered_km2"}
_SHARES = {"satisfaction_mean", "area_share", "households_share", "completeness"}


def rounded(table: pd.DataFrame) -> pd.DataFrame:
    """Rates and shares to 4 decimals, hours and per-unit figures to 2 (display only)."""
    out = table.copy()
    for col in out.columns:
        if col in _RATES or col in _SHARES:
            out[col] = out[col].astype(float).round(4)
        elif col in _HOURS:
            out[col] = out[col].astype(float).round(2)
    return out


def _plain(value):
    if value is None:
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (dt.datetime, dt.date, pd.Timestamp)):
        return value.isoformat()
    return value


def records(table: pd.DataFrame, *, index: str = "code") -> list[dict]:
    """Rows as dicts of plain JSON values (NaN and NA as None), the index as ``index``."""
    frame = rounded(table).reset_index(names=index) if index else rounded(table)
    cols = list(frame.columns)
    data = frame.astype(object).to_numpy()
    # One pass per cell through a tiny converter: tables have units, not events, as rows.
    return [dict(zip(cols, (_plain(v) for v in row))) for row in data]


def _labelled(table: pd.DataFrame, chinese: bool, labels: Mapping[str, str] | None) -> pd.DataFrame:
    """The table as a spreadsheet gets it: rounded, labelled, text cells neutralised."""
    out = rounded(table)
    if chinese:
        names = {**LABELS, **(labels or {})}
        out = out.rename(columns=names)
        out.index = out.index.rename(names.get(out.index.name, out.index.name))
    return neutralise_formulas(out)


def to_csv(table: pd.DataFrame, path: str | Path | None = None, *, chinese: bool = False,
           labels: Mapping[str, str] | None = None) -> str | None:
    """CSV (UTF-8 with a byte-order mark, so that Excel reads the Chinese); the text when
    ``path`` is None."""
    out = _labelled(table, chinese, labels)
    index = not isinstance(out.index, pd.RangeIndex)  # a plain row number is no column
    if path is None:
        buf = io.StringIO()
        out.to_csv(buf, index=index)
        return "\ufeff" + buf.getvalue()
    out.to_csv(path, encoding="utf-8-sig", index=index)
    return None


def to_xlsx(tables: Mapping[str, pd.DataFrame], path: str | Path, *, chinese: bool = True,
            labels: Mapping[str, str] | None = None, notes: Mapping[str, str] | None = None,
            progress=None) -> Path:
    """One sheet per table (named by the grouping, in Chinese with ``chinese``), and a
    sheet ``说明`` / ``notes`` with ``notes`` (key, text) when given."""
    path = Path(path)
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        used = set()
        for key, table in tables.items():
            name = (GROUPINGS.get(key, key) if chinese else key)[:31]
            while name in used:
                name = name[:29] + f"_{len(used)}"
            used.add(name)
            frame = _labelled(table, chinese, labels)
            frame.to_excel(writer, sheet_name=name)
            sheet = writer.sheets[name]
            sheet.freeze_panes = "C2"
            for i, col in enumerate([frame.index.name or "", *map(str, frame.columns)], start=1):
                width = max(8, min(40, 2 + 2 * len(col)))
                sheet.column_dimensions[sheet.cell(row=1, column=i).column_letter].width = width
            if progress:
                progress(f"sheet {name}")
        if notes:
            neutralise_formulas(pd.DataFrame({"item": list(notes), "text": list(notes.values())})).to_excel(
                writer, sheet_name="说明" if chinese else "notes", index=False)
    return path
