"""The sample township through the real entry points: init, validate, serve."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from typer.testing import CliRunner

from helpers.paths import SAMPLE
from gridgeo.cli import app
from gridgeo.io import validate_store
from gridgeo.sample import SAMPLE_PLAN

runner = CliRunner()


def test_sample_loads_completely(sample_store):
    counts = sample_store.counts()
    assert counts["divisions"] >= 13 + 5 + 2
    assert counts["grids"] >= 13 + 5
    assert counts["categories"] >= 40
    assert counts["events"] >= 20_000
    households = sample_store.read("households")
    assert 15_000 <= households["households"].sum() <= 25_000
    grids = sample_store.read("grids")
    assert grids.attrs["plan_version"] == SAMPLE_PLAN
    # Grid totals are the households inside them, and every household is in a grid.
    assert grids["households"].sum() == households["households"].sum()


def test_sample_validates_without_gaps_or_overlaps(sample_store):
    report = validate_store(sample_store)
    assert report.ok, str(report)


def test_validate_command_on_the_sample_files():
    files = [SAMPLE / "township.gpkg", SAMPLE / "staff.csv", SAMPLE / "categories.csv"]
    r = runner.invoke(app, ["validate", *map(str, files), "--standalone"])
    assert r.exit_code == 0, r.output
    assert "gaps: 0, overlaps: 0" in r.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_init_sample_then_serve(tmp_path):
    """What `make run` does: init --sample on an empty database, then serve, and ask it."""
    db = f"sqlite:///{tmp_path / 'run.db'}"
    r = runner.invoke(app, ["init", "--sample", "--database", db])
    assert r.exit_code == 0, r.output
    assert "sample loaded" in r.output
    # A second init keeps the data and does not load it twice.
    r = runner.invoke(app, ["init", "--sample", "--database", db])
    assert "holds data already" in r.output
    port = _free_port()
    env = dict(os.environ, GRIDGEO_DATABASE_URL=db)
    proc = subprocess.Popen([sys.executable, "-m", "gridgeo", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                health = httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the server did not start: " + proc.stdout.read1().decode(errors="replace"))
        assert health.status_code == 200 and health.json()["plan_in_force"] == SAMPLE_PLAN
        assert httpx.get(f"{base}/docs").status_code == 200
        grids = httpx.get(f"{base}/v1/grids").json()
        assert len(grids["features"]) >= 18
    finally:
        proc.terminate()
        proc.wait(timeout=10)
