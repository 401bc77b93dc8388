"""Offline assets: every script and style sheet a map uses ships in ``maps/assets``.

folium elements name their JavaScript and CSS in ``default_js`` / ``default_css`` as
remote links. gridgeo sets those lists on each element it creates (the map itself and
every plugin) to ``gridgeo-asset:`` names of vendored files, and :func:`render_html`
turns each such link into the file's text inlined in the page (one self-contained HTML
file), or into a link to where the API serves the assets. A rendered page is then
checked: a remaining ``http(s)`` script, style sheet or CSS ``url()`` is an error,
so a map never makes a request off the machine unless a base map was asked for.

The vendored files and their versions are in ``maps/assets/*/VERSION``; how they were
fetched is ``maps/assets/update.sh``.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from functools import lru_cache
from pathlib import Path

__all__ = [
    "ASSET_DIR",
    "LEAFLET",
    "FULLSCREEN",
    "MARKERCLUSTER",
    "HEAT",
    "SYNC",
    "GRIDGEO",
    "PROTOMAPS",
    "OfflineError",
    "asset_file",
    "vendored",
    "use_assets",
    "render_html",
]

ASSET_DIR = Path(__file__).resolve().parent / "assets"
SCHEME = "gridgeo-asset:"


class OfflineError(RuntimeError):
    """A map that would load something from the network, or a missing asset."""


def _js(name: str, path: str) -> tuple[str, str]:
    return (name, SCHEME + path)


# (js, css) of each library, in the order they must load.
LEAFLET = ([_js("leaflet", "leaflet/leaflet.js")], [_js("leaflet_css", "leaflet/leaflet.css")])
FULLSCREEN = (
    [_js("Control.Fullscreen.js", "leaflet.fullscreen/Control.FullScreen.js")],
    [_js("Control.FullScreen.css", "leaflet.fullscreen/Control.FullScreen.css")],
)
MARKERCLUSTER = (
    [_js("markerclusterjs", "leaflet.markercluster/leaflet.markercluster.js")],
    [
        _js("markerclustercss", "leaflet.markercluster/MarkerCluster.css"),
        _js("markerclusterdefaultcss", "leaflet.markercluster/MarkerCluster.Default.css"),
    ],
)
HEAT = ([_js("leaflet-heat.js", "leaflet.heat/leaflet-heat.js")], [])
SYNC = ([_js("Leaflet.Sync", "leaflet.sync/L.Map.Sync.js")], [])
PROTOMAPS = ([_js("protomaps-leaflet.js", "protomaps-leaflet/protomaps-leaflet.js")], [])
GRIDGEO = (
    [_js("gridgeo-maps.js", "gridgeo/gridgeo-maps.js")],
    [_js("gridgeo-maps.css", "gridgeo/gridgeo-maps.css")],
)


def use_assets(element, *libraries):
    """Make ``element`` (a folium element) load ``libraries`` from the vendored assets.

    Replaces the element's own ``default_js`` and ``default_css`` (remote links) on the
    instance; the class, and so folium elsewhere, is left alone.
    """
    element.default_js = [link for lib in libraries for link in lib[0]]
    element.default_css = [link for lib in libraries for link in lib[1]]
    return element


def asset_file(path: str) -> Path:
    """The vendored file at ``path`` (relative to ``maps/assets``); refuses anything else."""
    full = (ASSET_DIR / path).resolve()
    if ASSET_DIR not in full.parents or not full.is_file() or full.suffix == ".sh":
        raise OfflineError(f"no map asset {path!r}")
    return full


def vendored() -> dict[str, str]:
    """Each vendored package and its version (from ``maps/assets/*/VERSION``)."""
    out = {}
    for f in sorted(ASSET_DIR.glob("*/VERSION")):
        name, _, version = f.read_text().strip().rpartition("@")
        out[name] = version
    return out


_SOURCE_MAP = re.compile(r"^//# sourceMappingURL=\S*\s*$", re.MULTILINE)
_URL = re.compile(r"""url\(\s*(['"]?)(?!data:|#)([^'")]+)\1\s*\)""")


@lru_cache(maxsize=None)
def _inline_text(path: str) -> str:
    file = asset_file(path)
    text = file.read_text(encoding="utf-8")
    if file.suffix == ".css":
        base = file.parent

        def data_uri(m: re.Match) -> str:
            ref = m.group(2).split("?")[0].split("#")[0]
            target = (base / ref).resolve()
            if ASSET_DIR not in target.parents or not target.is_file():
                raise OfflineError(f"{path} refers to {ref!r}, which is not vendored")
            mime = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            return f"url(data:{mime};base64,{base64.b64encode(target.read_bytes()).decode()})"

        text = _URL.sub(data_uri, text)
        return text.replace("</style", "<\\/style")
    # A source map comment would make developer tools look for a .map file that is not there.
    text = _SOURCE_MAP.sub("", text)
    return text.replace("</script", "<\\/script")


_SCRIPT = re.compile(r'<script src="' + re.escape(SCHEME) + r'([^"]+)"></script>')
_LINK = re.compile(r'<link rel="stylesheet" href="' + re.escape(SCHEME) + r'([^"]+)"/>')
_REMOTE = re.compile(
    r"""<script[^>]+src=["']?(?:https?:)?//|<link[^>]+href=["']?(?:https?:)?//|url\(\s*['"]?(?:https?:)?//""",
    re.IGNORECASE,
)


def render_html(figure_or_map, *, assets_url: str | None = None) -> str:
    """Render a folium map (or figure) to HTML that loads nothing from the network.

    Parameters
    ----------
    figure_or_map : folium.Map, folium.plugins.DualMap or branca Figure
    assets_url : str, optional
        Link the assets from here (e.g. ``/maps/assets``, where the API serves them)
        instead of inlining them.

    Raises
    ------
    OfflineError
        If the page still names a remote script, style sheet or CSS ``url()``: some
        element kept folium's default links.
    """
    root = figure_or_map.get_root()
    html = root.render()
    if assets_url is None:
        html = _SCRIPT.sub(lambda m: "<script>" + _inline_text(m.group(1)) + "</script>", html)
        html = _LINK.sub(lambda m: "<style>" + _inline_text(m.group(1)) + "</style>", html)
    else:
        base = assets_url.rstrip("/")
        for pattern in (_SCRIPT, _LINK):
            for path in set(pattern.findall(html)):
                asset_file(path)  # fail here, not in the browser, on a missing file
        html = html.replace(SCHEME, base + "/")
    if SCHEME in html:
        raise OfflineError(f"an asset link was not resolved: {html[html.index(SCHEME) - 80:][:200]!r}")
    bad = _REMOTE.search(html)
    if bad:
        raise OfflineError(f"the map would load from the network: {html[bad.start():bad.start() + 160]!r}")
    return html
