"""Interactive maps of gridgeo (folium), working offline.

Five maps, each built from plain (Geo)DataFrames so that it draws whatever the core
produces, and each with a ``*_from_store`` shortcut:

- :func:`coverage_map`: grids coloured by staffing completeness, village boundaries;
- :func:`workload_map`: a choropleth of events per worker / per 100 households, open
  or overdue events;
- :func:`events_map`: events as clusters and heat with a time slider;
- :func:`patrol_map`: patrol tracks over the grids, coloured by patrol coverage;
- :func:`plan_map`: a draft plan beside the plan in force, changed grids highlighted.

Every map has a layer control, fullscreen, a scale bar and search by grid code or
village name. :func:`render_html` (or :func:`save`) writes one self-contained HTML
file: Leaflet and its plugins come from ``maps/assets`` (vendored from npm), so
opening a map makes no request off the machine unless a base map is configured
(:mod:`gridgeo.maps.base`).

>>> from maps import coverage_from_store, save       # doctest: +SKIP
>>> save(coverage_from_store(store), "coverage.html")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from pathlib import Path

# Imported on first use, so that `gridgeo --help` (which loads gridgeo.maps.cli through its
# entry point) does not pay for folium.
_EXPORTS = {
    "Basemap": "gridgeo.maps.base",
    "MapError": "gridgeo.maps.base",
    "get_basemap": "gridgeo.maps.base",
    "coverage_map": "gridgeo.maps.coverage",
    "coverage_from_store": "gridgeo.maps.coverage",
    "workload_map": "gridgeo.maps.workload",
    "workload_from_store": "gridgeo.maps.workload",
    "events_map": "gridgeo.maps.events",
    "events_from_store": "gridgeo.maps.events",
    "patrol_map": "gridgeo.maps.patrols",
    "patrol_from_store": "gridgeo.maps.patrols",
    "plan_map": "gridgeo.maps.plan",
    "plan_from_store": "gridgeo.maps.plan",
    "OfflineError": "gridgeo.maps.offline",
    "render_html": "gridgeo.maps.offline",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'maps' has no attribute {name!r}")


__all__ = [
    "Basemap",
    "MapError",
    "OfflineError",
    "get_basemap",
    "coverage_map",
    "coverage_from_store",
    "workload_map",
    "workload_from_store",
    "events_map",
    "events_from_store",
    "patrol_map",
    "patrol_from_store",
    "plan_map",
    "plan_from_store",
    "render_html",
    "save",
    "show",
]


def save(m, path: str | Path) -> Path:
    """Write map ``m`` to ``path`` as one self-contained HTML file; return the path."""
    from gridgeo.maps.offline import render_html

    path = Path(path)
    path.write_text(render_html(m), encoding="utf-8")
    return path


class _Inline:
    """A map as Jupyter shows it: the self-contained page in an iframe."""

    def __init__(self, page: str, height: int):
        self.page = page
        self.height = height

    def _repr_html_(self) -> str:
        from html import escape

        return (f'<iframe srcdoc="{escape(self.page)}" style="width:100%;height:{self.height}px;border:0" '
                'sandbox="allow-scripts"></iframe>')


def show(m, height: int = 520) -> _Inline:
    """Display map ``m`` inline in a notebook, offline: the last expression of a cell.

    folium's own inline display would leave the vendored Leaflet out; this inlines it.
    """
    from gridgeo.maps.offline import render_html

    return _Inline(render_html(m), height)
