"""The command line, as a user runs it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from helpers.tiny import V1
from gridgeo.cli import app

runner = CliRunner()


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'cli.db'}"


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_every_command_has_help():
    for cmd in ["init", "import", "export", "validate", "serve", "info"]:
        r = run(cmd, "--help")
        assert r.exit_code == 0 and "Usage" in r.output, cmd
    r = run("--help")
    assert all(c in r.output for c in ["init", "import", "export", "validate", "serve", "info"])


def test_init_import_info_export(db, tiny, tmp_path):
    assert run("init", "--database", db).exit_code == 0
    r = run("import", tiny["gpkg"], tiny["staff"], tiny["categories"], "--database", db,
            "--plan", "v1", "--effective-from", "2024-01-01")
    assert r.exit_code == 0, r.output
    assert "grids 4" in r.output and "grid plan v1 published" in r.output
    r = run("info", "--database", db)
    assert r.exit_code == 0 and "plan in force today: v1" in r.output
    out = tmp_path / "grids.geojson"
    r = run("export", "grids", out, "--database", db)
    assert r.exit_code == 0 and out.exists() and V1 + "001" in out.read_text(encoding="utf-8")
    r = run("validate", "--database", db)
    assert r.exit_code == 0 and "gaps: 0, overlaps: 0" in r.output


def test_failed_import_exits_non_zero_and_names_the_row(db, tiny, tmp_path):
    run("init", "--database", db)
    bad = tmp_path / "categories.csv"
    bad.write_text("code,name,platform,department,deadline_hours\nX1,某,weather,气象,24\n", encoding="utf-8")
    report = tmp_path / "report.csv"
    r = run("import", bad, "--database", db, "--report", report)
    assert r.exit_code == 1
    assert "nothing was written" in r.output
    text = report.read_text(encoding="utf-8")
    assert "platform" in text and "weather" in text and ",1," in text
    assert run("info", "--database", db).output.count("categories") == 1


def test_validate_files_standalone(tiny):
    r = run("validate", tiny["gpkg"], "--standalone")
    assert r.exit_code == 0, r.output
    assert "0 error(s)" in r.output


def test_bad_date_is_a_usage_error(db, tiny):
    run("init", "--database", db)
    r = run("import", tiny["gpkg"], "--database", db, "--effective-from", "31/01/2026")
    assert r.exit_code == 2


def test_commands_refuse_an_uninitialised_database(db):
    r = run("info", "--database", db)
    assert r.exit_code == 1 and "gridgeo init" in r.output
