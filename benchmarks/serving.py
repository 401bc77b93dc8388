"""What the HTTP benchmarks share: waiting for a ``gridgeo serve`` they started."""

from __future__ import annotations

import subprocess
import time

import httpx


def wait_for_health(base: str, proc: subprocess.Popen, seconds: float = 90) -> None:
    """Return once ``base``/health answers 200; exit with the server's output if it dies,
    or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {proc.stdout.read().decode(errors='replace')}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the server did not start in {seconds:g} s")
