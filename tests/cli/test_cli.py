"""The command line, as a user runs it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from helpers.paths import ROOT
from helpers.tiny import V1
from gridgeo.cli import app
from gridgeo.errors import InternalError

runner = CliRunner()


@pytest.fixture
def db(tmp_path):
    return f"sqlite:///{tmp_path / 'cli.db'}"


def run(*args):
    return runner.invoke(app, [str(a) for a in args], prog_name="gridgeo")


def _commands(group, path: tuple[str, ...] = ()):
    """Every command path of the tree under ``group``, groups included, hidden ones too."""
    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*path, name))


def test_every_command_has_help():
    root = typer.main.get_command(app)
    paths = [p for p, _ in _commands(root)]
    # the tree as the README lists it, the maps plugin included
    assert {p[0] for p in paths} == {"init", "import", "validate", "export", "info", "serve", "locate",
                                     "plan", "events", "report", "archive", "users", "map", "notify"}
    assert {p[1] for p in paths if p[0] == "plan" and len(p) == 2} == {
        "new", "list", "show", "publish", "diff", "move", "staffing", "transition", "split", "merge", "undo",
        "renumber"}
    for path, cmd in _commands(root):
        r = run(*path, "--help")
        assert r.exit_code == 0 and "Usage: gridgeo " + " ".join(path) in " ".join(r.output.split()), path
        assert cmd.help, f"gridgeo {' '.join(path)} has no help text"
    r = run("--help")
    assert all(c in r.output for c in ["init", "import", "export", "validate", "serve", "info", "plan"])
    # the old spelling works but is neither a command nor advertised
    assert "plans" not in root.commands and not re.search(r"^\W*plans\s", r.output, re.M)


def test_the_database_option_is_declared_once():
    """Every --database of every command (the maps plugin's too) is the one in cli/common.py."""
    from gridgeo.cli.common import DatabaseOpt

    shared = DatabaseOpt.__metadata__[0]
    seen = 0
    for path, cmd in _commands(typer.main.get_command(app)):
        for param in cmd.params:
            if "--database" in getattr(param, "opts", []):
                seen += 1
                assert param.opts == ["--database", "-d"] and param.help == shared.help, path
    assert seen >= 30
    declared = [str(f.relative_to(ROOT)) for f in [*(ROOT / "gridgeo").rglob("*.py"), *(ROOT / "maps").rglob("*.py")]
                if '"--database"' in f.read_text(encoding="utf-8")]
    assert declared == ["gridgeo/cli/common.py"]


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


def test_commands_refuse_an_uninitialised_database_in_every_group(db):
    # one error line on stderr, exit 1: the root group prints gridgeo errors for every command
    for args in (["plan", "list"], ["users", "list"], ["events", "purge-keys"], ["export", "grids", "x.gpkg"]):
        r = run(*args, "--database", db)
        assert r.exit_code == 1 and r.stderr.startswith("error:") and "gridgeo init" in r.stderr, args
        assert "Traceback" not in r.output, args


def test_an_internal_error_is_reported_as_a_bug_with_its_traceback(monkeypatch, db):
    def broken(*args, **kwargs):
        raise InternalError("a re-cut piece lies in no block")

    run("init", "--database", db)
    monkeypatch.setattr("gridgeo.store.Store.plans", broken)
    r = run("plan", "list", "--database", db)
    assert r.exit_code == 1
    assert "Traceback" in r.stderr and "internal error (a bug in gridgeo" in r.stderr
    assert "a re-cut piece lies in no block" in r.stderr and r.stdout == ""


# -- plan: one group; the old spellings still work, with a note --------------------------------

NOTE_PLANS = "note: `gridgeo plans` is now `gridgeo plan`"
NOTE_PLAN = "note: `gridgeo plan OPTIONS` is now `gridgeo plan new OPTIONS`"


def test_plan_new_from_files(tiny, tmp_path):
    report = tmp_path / "r.json"
    r = run("plan", "new", "--villages", tiny["gpkg"], "--households", tiny["gpkg"], "--band", "1:10",
            "--report", report)
    assert r.exit_code == 0, r.output
    assert json.loads(report.read_text(encoding="utf-8"))["metrics"]["grids"] == 2
    assert "note:" not in r.stderr


def _plan_report(path: Path) -> dict:
    """A ``--report`` JSON without the timings, which differ from run to run."""
    rep = json.loads(path.read_text(encoding="utf-8"))
    rep.pop("timing", None)
    rep["metrics"].pop("runtime_s", None)
    return rep


def test_plan_with_options_first_is_plan_new_with_a_note(tiny, tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    args = ["--villages", tiny["gpkg"], "--households", tiny["gpkg"], "--band", "1:10", "--report"]
    r = run("plan", *args, old)
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines()[0].startswith(NOTE_PLAN)
    assert run("plan", "new", *args, new).exit_code == 0
    assert _plan_report(old) == _plan_report(new)
    # usage errors of the old spelling still say which option is wrong
    r = run("plan", "--exclaves", "nowhere", "--report", old)
    assert r.exit_code == 2 and "use own or attach" in r.output and NOTE_PLAN in r.stderr


def test_plans_is_plan_with_a_note(db, tiny):
    run("init", "--database", db)
    run("import", tiny["gpkg"], "--database", db, "--plan", "v1", "--effective-from", "2024-01-01")
    new = run("plan", "list", "--database", db)
    old = run("plans", "list", "--database", db)
    assert new.exit_code == old.exit_code == 0
    assert old.stdout == new.stdout and "v1" in new.stdout
    assert old.stderr.strip().splitlines() == [NOTE_PLANS + "; the old spelling will be removed."]
    assert new.stderr == ""
    r = run("plans", "--help")
    assert r.exit_code == 0 and "Usage: gridgeo plan " in r.output


def test_the_readme_uses_the_current_spellings():
    """Every command in the README's examples exists, spelt as it is now."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    in_code = False
    for line in readme.splitlines():
        in_code ^= line.startswith("```")
        words = line.removeprefix("$ ").split()
        if not in_code or len(words) < 2 or words[0] != "gridgeo":
            continue
        assert words[1] in root.commands, line
        group = root.commands[words[1]]
        if hasattr(group, "commands") and len(words) > 2:  # a group: a subcommand follows
            assert words[2].split("|")[0] in group.commands, line
