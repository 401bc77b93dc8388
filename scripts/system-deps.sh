#!/usr/bin/env bash
# System packages the test suite needs (PostGIS for the PostgreSQL half of the store
# tests), and a running PostgreSQL on 127.0.0.1:5432. Idempotent; a no-op when all is there.
set -euo pipefail

need=()
pg_version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1 || true)
if [[ -n "$pg_version" && ! -e /usr/share/postgresql/$pg_version/extension/postgis.control ]]; then
  need+=("postgresql-$pg_version-postgis-3")
fi
# maps: tests/maps/test_maps.py opens the maps in headless Chromium (the distribution's, never a
# downloaded browser) and screenshots them with a CJK font.
for pkg in chromium fonts-wqy-microhei; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done

if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing system packages: ${need[*]} (install them as root; the PostgreSQL and map tests need them)" >&2
  fi
fi

# PostgreSQL on 127.0.0.1:5432, started if it is installed but down.
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if [[ $(id -u) -eq 0 ]] && command -v pg_ctlcluster >/dev/null && [[ -n "$pg_version" ]]; then
    pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
fi
exit 0
