"""The synthetic sample township shipped in ``data/sample`` (see data/README.md)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gridgeo.config import get_settings
from gridgeo.errors import InvalidInput
from gridgeo.io import ImportResult, Progress, import_files
from gridgeo.store import Store

#: The plan the sample grids form: one grid per village, as in the Banqiao seed.
SAMPLE_PLAN = "2024-01"
SAMPLE_EFFECTIVE = dt.date(2024, 1, 1)
SAMPLE_FILES = ("township.gpkg", "categories.csv", "staff.csv", "events.csv")


def sample_files(folder: str | Path | None = None) -> list[Path]:
    """The sample files, checked to exist."""
    folder = Path(folder or get_settings().sample_dir)
    paths = [folder / name for name in SAMPLE_FILES]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise InvalidInput(f"sample data not found: {', '.join(missing)} (set GRIDGEO_SAMPLE_DIR)")
    return paths


def load_sample(store: Store, *, folder: str | Path | None = None,
                progress: Progress | None = None) -> ImportResult:
    """Import the sample data set into ``store`` in one transaction."""
    return import_files(
        store,
        sample_files(folder),
        plan_version=SAMPLE_PLAN,
        plan_name="以行政村为单位的初始网格",
        effective_from=SAMPLE_EFFECTIVE,
        actor="sample",
        progress=progress,
    )
