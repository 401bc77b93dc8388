"""folium elements for gridgeo's maps, backed by ``assets/gridgeo/gridgeo-maps.js``.

Each element embeds its data once, compactly (see :mod:`gridgeo.maps.encoding`), and loads its
scripts from the vendored assets (:mod:`gridgeo.maps.offline`). Layers subclass
``folium.map.Layer``, so ``folium.LayerControl`` lists them like any folium layer.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import folium
import numpy as np
import pandas as pd
from branca.element import MacroElement
from folium.elements import JSCSSMixin
from folium.map import Layer
from jinja2 import Template

from gridgeo.maps import offline

__all__ = [
    "to_js",
    "columns",
    "GridLayer",
    "MeshLayer",
    "LabelLayer",
    "LineLayer",
    "PointLayer",
    "VectorBase",
    "TiledGrids",
    "Legend",
    "Title",
    "ScaleBar",
    "Search",
    "EventData",
    "EventClusters",
    "EventHeat",
    "EventControl",
]


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def to_js(obj: Any) -> str:
    """JSON for a ``<script>`` block: UTF-8 (not ``\\u`` escapes), compact, and safe
    to inline.

    ``</`` cannot close the script. And branca renders each element's script once
    more as a Jinja template, so ``{{``, ``{%`` and ``{#`` (which encoded geometry and
    user text may contain) are written with a JSON escape for the second character;
    compact JSON has them only inside strings, where the escape means the same.
    """
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_clean)
    text = text.replace("</", "<\\/")
    return text.replace("{{", "{\\u007b").replace("{%", "{\\u0025").replace("{#", "{\\u0023")


def columns(frame: pd.DataFrame, names: Sequence[str], *, decimals: int = 1) -> tuple[dict, dict]:
    """Columns of ``frame`` as JSON-ready lists, and lookup tables for repetitive ones.

    A text column with few distinct values (village names, instructors) is sent as
    integer codes into a list of its values. Floats are rounded to ``decimals``; NaN
    and None become null.
    """
    props: dict[str, list] = {}
    lookups: dict[str, list] = {}
    for name in names:
        col = frame[name]
        if pd.api.types.is_float_dtype(col):
            props[name] = col.round(decimals).astype(object).where(col.notna(), None).tolist()
        elif pd.api.types.is_integer_dtype(col) or pd.api.types.is_bool_dtype(col):
            props[name] = col.astype(object).where(col.notna(), None).tolist()
        else:
            values = col.astype(object).where(col.notna(), None)
            codes, uniques = pd.factorize(values, use_na_sentinel=False)
            if len(uniques) * 2 < len(values):
                props[name] = codes.tolist()
                lookups[name] = [None if (isinstance(u, float) and math.isnan(u)) else u
                                 for u in uniques.tolist()]
            else:
                props[name] = values.tolist()
    return props, lookups


class _GG(JSCSSMixin, MacroElement):
    """An element of gridgeo-maps.js (loads it and its style sheet offline)."""

    def __init__(self):
        super().__init__()
        offline.use_assets(self, offline.GRIDGEO)


class GridLayer(JSCSSMixin, Layer):
    """Polygons (grids) with a style per class, a tooltip table and search columns.

    Parameters
    ----------
    topology : dict or None
        From :func:`gridgeo.maps.encoding.encode_topology`; None with ``share``.
    share : GridLayer, optional
        Use this layer's topology (several layers encoded together share their arcs);
        ``feature_range`` (from, to) picks this layer's features in it.
    props, lookups : dict
        From :func:`columns`; search uses ``code``, ``name`` and ``village``.
    classes : array_like of int
        Style index of each polygon.
    styles : list of dict
        Leaflet path options (``color``, ``weight``, ``fillColor``, ``fillOpacity`` ...).
    tooltip : list of (column, label)
        Rows of the tooltip table; ``title`` is the column shown above it.
    class_name : str
        CSS class of every drawn path (tests count ``path.<class_name>``).
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GG.polygons({{ this.payload }}
            {%- if this.share %}, {{ this.share.get_name() }}.gg.spec.topo{% endif %});
        {% endmacro %}
        """
    )

    def __init__(self, topology: dict | None, props: dict, lookups: dict, classes, styles: list[dict], *,
                 tooltip: Sequence[tuple[str, str]] = (), title: str | None = "name",
                 class_name: str = "gg-grid", name: str = "网格", show: bool = True,
                 interactive: bool = True, control: bool = True,
                 share: GridLayer | None = None, feature_range: tuple[int, int] | None = None):
        super().__init__(name=name, overlay=True, control=control, show=show)
        self._name = "GridLayer"
        offline.use_assets(self, offline.GRIDGEO)
        if (topology is None) == (share is None):
            raise ValueError("give the topology, or the layer whose topology this one shares")
        self.share = share
        self.payload = to_js({
            "topo": topology,
            "range": list(feature_range) if feature_range else None,
            "props": props,
            "lookups": lookups,
            "cls": [int(c) for c in np.asarray(classes, dtype=int)],
            "styles": styles,
            "tooltip": [list(t) for t in tooltip],
            "title": title,
            "className": class_name,
            "interactive": interactive,
        })


class MeshLayer(Layer):
    """Lines along chosen arcs of a :class:`GridLayer`'s topology (e.g. village boundaries)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.polyline(
            GG.topologyArcs({{ this.grid.get_name() }}.gg.spec.topo, {{ this.ids }}),
            {{ this.style }}
        );
        {% endmacro %}
        """
    )

    def __init__(self, grid: GridLayer, ids: Sequence[int], style: dict, *, name: str = "村社边界",
                 show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "MeshLayer"
        self.grid = grid
        self.ids = to_js([int(i) for i in ids])
        self.style = to_js({"interactive": False, **style})


class LabelLayer(JSCSSMixin, Layer):
    """Names drawn at points (village names at a point inside each village)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GG.labels({{ this.payload }});
        {% endmacro %}
        """
    )

    def __init__(self, points: dict, names: Sequence[str], *, name: str = "村社名称", show: bool = True,
                 min_zoom: int = 0, class_name: str = "gg-label"):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "LabelLayer"
        offline.use_assets(self, offline.GRIDGEO)
        self.payload = to_js({**points, "names": list(names), "minZoom": int(min_zoom),
                              "className": class_name})


class LineLayer(JSCSSMixin, Layer):
    """Lines by class (roads, rivers by rank), thinner when zoomed out (``GG.lines``).

    ``lines`` is :func:`gridgeo.maps.encoding.encode_lines`; ``classes`` the style
    index of each line; ``styles`` ``{color, weight, minZoom}`` per class.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GG.lines({{ this.payload }});
        {% endmacro %}
        """
    )

    def __init__(self, lines: dict, classes, styles: list[dict], names: Sequence, *, name: str,
                 class_name: str, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "LineLayer"
        offline.use_assets(self, offline.GRIDGEO)
        self.payload = to_js({**lines, "cls": [int(c) for c in np.asarray(classes, dtype=int)],
                              "styles": styles, "names": list(names), "className": class_name})


class PointLayer(JSCSSMixin, Layer):
    """Small circles (households) drawn from zoom ``min_zoom`` on (``GG.points``)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GG.points({{ this.payload }});
        {% endmacro %}
        """
    )

    def __init__(self, points: dict, style: dict, *, name: str, min_zoom: int = 16, show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "PointLayer"
        offline.use_assets(self, offline.GRIDGEO)
        self.payload = to_js({**points, "style": style, "minZoom": int(min_zoom)})


def _ground_classes() -> dict:
    from gridgeo.maps.ground import RIVER_CLASSES, ROAD_CLASSES

    return {"roads": [list(c[:1]) + [list(c[1])] + list(c[2:]) for c in ROAD_CLASSES],
            "rivers": [list(c[:1]) + [list(c[1])] + list(c[2:]) for c in RIVER_CLASSES]}


class VectorBase(JSCSSMixin, Layer):
    """The offline vector base map (``GG.vectorBase``): an archive built by ``gridgeo map
    basemap``, its tiles at ``url``, drawn by protomaps-leaflet with the ground's road and
    river classes (:mod:`gridgeo.maps.ground`)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GG.vectorBase({{ this.payload }});
        {% endmacro %}
        """
    )

    def __init__(self, url: str, *, max_data_zoom: int, attribution: str, name: str = "本地底图"):
        super().__init__(name=name, overlay=False, control=True, show=True)
        self._name = "VectorBase"
        offline.use_assets(self, offline.PROTOMAPS, offline.GRIDGEO)
        self.payload = to_js({"url": url, "maxDataZoom": int(max_data_zoom), "attribution": attribution,
                              "households": True, **_ground_classes()})


class TiledGrids(JSCSSMixin, Layer):
    """Grids drawn from vector tiles (``GG.tiledGrids``), for maps too large to inline.

    ``classes`` maps grid code -> style index (only codes not in ``base`` are sent);
    ``styles`` are the classes' path options, ``labels`` their names (shown on click with
    the tile's attributes in ``tooltip``); ``ground_url`` adds the roads and rivers from
    the roads tiles, ``villages_url`` the village outlines; grids whose code does not start
    with ``prefix`` are not drawn; with ``lookup_url`` (the API's ``/v1/lookup``) a click
    adds the grid's village and staff as the lookup answers them."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GG.tiledGrids({{ this.payload }});
        {% endmacro %}
        """
    )

    def __init__(self, url: str, codes, classes, styles: list[dict], labels: Sequence[str], *,
                 tooltip: Sequence[tuple[str, str]] = (), class_title: str = "分类",
                 ground_url: str | None = None, villages_url: str | None = None, prefix: str | None = None,
                 name: str = "网格", lookup_url: str | None = None):
        super().__init__(name=name, overlay=True, control=True, show=True)
        self._name = "TiledGrids"
        offline.use_assets(self, offline.PROTOMAPS, offline.GRIDGEO)
        cls = pd.Series(np.asarray(classes, dtype=int), index=pd.Index(codes, dtype=object).astype(str))
        base = int(cls.mode().iloc[0]) if len(cls) else 0
        others = cls[cls != base]
        self.payload = to_js({
            "url": url, "base": base, "cls": dict(zip(others.index.tolist(), others.to_numpy().tolist())),
            "styles": styles, "labels": list(labels), "tooltip": [list(t) for t in tooltip],
            "classTitle": class_title, "prefix": prefix or "", "villages": villages_url, "lookup": lookup_url,
            "ground": {"url": ground_url, **_ground_classes()} if ground_url else None,
        })


class Legend(_GG):
    """A legend: ``items`` are ``(fill colour, label)`` or ``(fill, label, border colour)``."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GG.legend({{ this._parent.get_name() }}, {{ this.payload }});
        {% endmacro %}
        """
    )

    def __init__(self, title: str, items: Sequence[Sequence[str]], *, note: str | None = None,
                 position: str = "bottomright"):
        super().__init__()
        self._name = "Legend"
        self.payload = to_js({"title": title, "items": [list(i) for i in items], "note": note,
                              "position": position})


class Title(_GG):
    """A title over the top of the map (``html`` is trusted markup built by gridgeo)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        GG.title({{ this._parent.get_name() }}, {{ this.payload }});
        {% endmacro %}
        """
    )

    def __init__(self, title: str, subtitle: str | None = None):
        super().__init__()
        self._name = "Title"
        from html import escape

        html = escape(title) + (f"<small>{escape(subtitle)}</small>" if subtitle else "")
        self.payload = to_js(html)


class ScaleBar(_GG):
    """A metric scale bar (Leaflet's, without miles and feet)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        L.control.scale({imperial: false, maxWidth: 160}).addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self):
        super().__init__()
        self._name = "ScaleBar"


class AttributionPrefix(_GG):
    """Leaflet's credit without the flag its default prefix carries."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        {{ this._parent.get_name() }}.attributionControl.setPrefix(
            '<a href="https://leafletjs.com" title="A JavaScript library for interactive maps">Leaflet</a>');
        {% endmacro %}
        """
    )

    def __init__(self):
        super().__init__()
        self._name = "AttributionPrefix"


class Search(_GG):
    """Search by grid code, grid name or village name over grid layers."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GG.search(
            {{ this._parent.get_name() }},
            [{{ this.layer_names }}],
            {{ this.options }}
        );
        {% endmacro %}
        """
    )

    def __init__(self, layers: Sequence[GridLayer], *, placeholder: str = "搜索网格编码、网格或村社名称",
                 position: str = "topleft"):
        super().__init__()
        self._name = "Search"
        self.layers = list(layers)
        self.layer_names = ", ".join(layer.get_name() for layer in self.layers)
        self.options = to_js({"placeholder": placeholder, "position": position})


class EventData(_GG):
    """The events of a period, shared by the cluster and heat layers and the slider."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GG.events({{ this.payload }});
        {% endmacro %}
        """
    )

    def __init__(self, spec: dict):
        super().__init__()
        self._name = "EventData"
        self.n = spec["n"]
        self.payload = to_js(spec)


class EventClusters(JSCSSMixin, Layer):
    """Clustered event markers (Leaflet.markercluster), filled by platform, ringed by status."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GG.eventClusters({{ this.data.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, data: EventData, *, name: str = "事件点（聚合）", show: bool = True):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "EventClusters"
        offline.use_assets(self, offline.MARKERCLUSTER, offline.GRIDGEO)
        self.data = data


class EventHeat(JSCSSMixin, Layer):
    """A heat map of the events (Leaflet.heat)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GG.eventHeat({{ this.data.get_name() }}, {{ this.options }});
        {% endmacro %}
        """
    )

    def __init__(self, data: EventData, *, name: str = "事件热力图", show: bool = True, **options):
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "EventHeat"
        offline.use_assets(self, offline.HEAT, offline.GRIDGEO)
        self.data = data
        self.options = to_js(options)


class EventControl(_GG):
    """The time slider (one step of the period, or all of it), play button and platform
    switches; filters the event layers and fills them the first time."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GG.eventControl(
            {{ this._parent.get_name() }}, {{ this.data.get_name() }}, {{ this.options }});
        {% endmacro %}
        """
    )

    def __init__(self, data: EventData, *, position: str = "bottomleft", interval_ms: int = 1500):
        super().__init__()
        self._name = "EventControl"
        self.data = data
        self.options = to_js({"position": position, "interval": interval_ms})


def fullscreen(m: folium.Map, **kwargs) -> folium.Element:
    """folium's Fullscreen control, loading leaflet.fullscreen from the vendored assets."""
    from folium.plugins import Fullscreen

    ctl = Fullscreen(position="topleft", title="全屏", title_cancel="退出全屏", **kwargs)
    offline.use_assets(ctl, offline.FULLSCREEN)
    return ctl.add_to(m)
