"""The application as the tests build it: over a given store, with settings from the
environment as ``GRIDGEO_*`` variables set for the one test."""

from __future__ import annotations

from gridgeo.api.deps import get_store
from gridgeo.api.main import create_app
from gridgeo.api.resources import _lookup_for
from gridgeo.config import get_settings


def app_for(store, monkeypatch=None, **env):
    """``create_app()`` over ``store``; ``env`` (``lookup_rate="0"``, ...) is set through
    ``monkeypatch`` as ``GRIDGEO_LOOKUP_RATE`` and so on, for this test only."""
    for k, v in env.items():
        monkeypatch.setenv(f"GRIDGEO_{k.upper()}", str(v))
    get_settings.cache_clear()
    _lookup_for.cache_clear()
    try:
        app = create_app()
    finally:
        get_settings.cache_clear()
    app.dependency_overrides[get_store] = lambda: store
    return app
