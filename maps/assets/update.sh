#!/usr/bin/env bash
# Re-fetch the vendored Leaflet assets from the npm registry.
#
# Every map gridgeo draws inlines these files (or the API serves them from here), so that
# opening a map makes no request off the machine. They come from the packages as published
# on the npm registry, fetched with `npm pack` (a tarball, no install scripts run), with
# each package's licence file beside them. To upgrade: change a version below, run
#   bash maps/assets/update.sh
# then run tests/maps/test_maps.py (it opens every map in headless Chromium with the network
# off, and checks the versions below) and review `git diff --stat maps/assets`.
# maps/offline.py names the files the maps load; maps/assets/README.md lists the licences.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# name@version  then the files to take from the tarball's package/ folder
packages=(
  "leaflet@1.9.4               LICENSE dist/leaflet.js dist/leaflet.css dist/images/layers.png dist/images/layers-2x.png dist/images/marker-icon.png dist/images/marker-icon-2x.png dist/images/marker-shadow.png"
  "leaflet.markercluster@1.5.3 MIT-LICENCE.txt dist/leaflet.markercluster.js dist/MarkerCluster.css dist/MarkerCluster.Default.css"
  "leaflet.heat@0.2.0          LICENSE dist/leaflet-heat.js"
  "simpleheat@0.2.0            LICENSE"
  # 3.x: the line folium's Fullscreen plugin is written for (L.control.fullscreen).
  "leaflet.fullscreen@3.0.2    LICENSE Control.FullScreen.js Control.FullScreen.css icon-fullscreen.svg"
  # folium's DualMap (the plan map: draft beside the plan in force) calls map.sync().
  "leaflet.sync@0.2.4          LICENSE L.Map.Sync.js"
  # vector tiles drawn on canvas: the offline base map (gridgeo map basemap) and the tiled
  # grids of a province-size map. Its build bundles pmtiles, @mapbox/vector-tile, pbf,
  # @mapbox/point-geometry, rbush, color2k, potpack (BSD-3-Clause, ISC, MIT).
  "protomaps-leaflet@5.1.0     LICENSE package.json dist/protomaps-leaflet.js"
)

for entry in "${packages[@]}"; do
  read -r spec files <<<"$entry"
  name="${spec%@*}"
  (cd "$work" && npm pack --silent "$spec" >/dev/null)
  tarball="$(ls "$work"/*.tgz)"
  rm -rf "$work/package" && tar -xzf "$tarball" -C "$work" && rm -f "$tarball"
  rm -rf "${here:?}/$name" && mkdir -p "$here/$name"
  for f in $files; do
    dest="$here/$name/${f#dist/}"
    mkdir -p "$(dirname "$dest")"
    cp "$work/package/$f" "$dest"
  done
  echo "$spec" >"$here/$name/VERSION"
  echo "vendored $spec"
done
