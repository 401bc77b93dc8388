"""The console's tests hash passwords with argon2id at OWASP's minimum costs (19 MiB, 2 passes,
1 lane: a configuration a small server may use, GRIDGEO_PASSWORD_*), not the default 64 MiB
and 3 passes, which cost most of a second per log-in on a loaded 2-core machine."""

from __future__ import annotations

import pytest

CHEAP_ARGON2 = {"GRIDGEO_PASSWORD_MEMORY_KIB": "19456", "GRIDGEO_PASSWORD_TIME_COST": "2",
                "GRIDGEO_PASSWORD_PARALLELISM": "1"}


@pytest.fixture(scope="module", autouse=True)
def owasp_minimum_argon2():
    from gridgeo.config import get_settings

    with pytest.MonkeyPatch.context() as env:
        for k, v in CHEAP_ARGON2.items():
            env.setenv(k, v)
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()
