#!/usr/bin/env bash
# Re-fetch the console's vendored browser assets from the npm registry.
#
# The console's pages load these files from the server itself (/static/), never from a CDN:
# it must work on a government intranet with no internet. They come from the packages as
# published on the npm registry, fetched with `npm pack` (a tarball, no install scripts run),
# each with its licence file beside it. To upgrade: change a version below, run
#   bash console/static/update.sh
# then run tests/console (the browser journeys record every request: nothing may leave
# 127.0.0.1). Leaflet is not copied here: the console serves the one the maps vendor
# (maps/assets/leaflet).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# name@version  folder  then the files to take from the tarball's package/ folder
packages=(
  # 2.x: the line whose API (hx-boost, htmx.config.responseHandling) the templates use.
  "htmx.org@2.0.11 htmx LICENSE dist/htmx.min.js"
)

for entry in "${packages[@]}"; do
  read -r spec folder files <<<"$entry"
  (cd "$work" && npm pack --silent "$spec" >/dev/null)
  tarball="$(ls "$work"/*.tgz)"
  rm -rf "$work/package" && tar -xzf "$tarball" -C "$work" && rm -f "$tarball"
  rm -rf "${here:?}/$folder" && mkdir -p "$here/$folder"
  for f in $files; do
    cp "$work/package/$f" "$here/$folder/$(basename "$f")"
  done
  echo "$spec" >"$here/$folder/VERSION"
  echo "vendored $spec"
done
