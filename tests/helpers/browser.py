"""The system's Chromium through Playwright, for the browser tests (maps, console): never a
downloaded browser, and no name resolves, so nothing can be fetched off the machine.

``GRIDGEO_CHROMIUM`` names another binary. Without Chromium or a CJK font the browser tests
are skipped on a developer machine and fail in CI (``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GRIDGEO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in containers
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # no name resolves
]


def unavailable(why: str):
    """Skip (or fail, in CI) a test that needs what this machine lacks."""
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (a Playwright ``Browser``), closed on exit. Module-scoped fixtures
    hold it: Playwright's sync API keeps an event loop running in the thread while open."""
    if not Path(CHROMIUM).exists():
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium; scripts/system-deps.sh)")
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    if not fonts.strip():
        unavailable("no CJK font (apt-get install fonts-wqy-microhei; scripts/system-deps.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
