"""No command ends in a traceback on bad input (issue 20).

Every command of the ``gridgeo`` app (enumerated from the Typer app, so that a new command
is covered as it is added) is run in-process with a missing file, an empty file, a file
in a wrong format and a CSV in an unknown encoding: as its database (every command takes
``--database``), and, for commands that read files, as each file it reads (with a good
database). Each must exit non-zero with an error that names the file, and no traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gridgeo.cli import app, common
from gridgeo.store import Store

#: Parameters that name a file a command writes (they get a fresh path, never a bad file).
OUTPUTS = {"out", "output", "out_file", "report", "refused", "directory_out"}
#: Commands whose required path argument is where they write.
WRITES_TO = {("archive", "export"): "directory"}
#: What a command needs besides its required parameters to get as far as its files.
EXTRA = {("plan", "move"): ["--households", "H1"], ("plan", "new"): ["--save-draft"],
         ("plan", "split"): ["--blocks", "1"], ("locate",): ["--crs", "wgs84"]}
#: Values for required parameters that are not files, by name (else by type).
VALUES = {"period": "2026", "layer": "grids", "role": "admin", "token_id": "1", "ref": "v1",
          "a": "v1", "b": "v2", "to": "x", "username": "someone"}


def _commands():
    root = typer.main.get_command(app)

    def walk(cmd, path):
        if hasattr(cmd, "commands"):
            for name, sub in sorted(cmd.commands.items()):
                if not getattr(sub, "hidden", False):
                    yield from walk(sub, (*path, name))
        else:
            yield path, cmd

    return list(walk(root, ()))


COMMANDS = _commands()
KINDS = ("missing", "empty", "wrong-format", "wrong-encoding")


def _bad_file(folder: Path, kind: str, suffix: str) -> Path:
    path = folder / f"{kind}{suffix}"
    if kind == "missing":
        return folder / "no-such-folder" / f"missing{suffix}"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "wrong-format":  # an image where a table or a database is expected
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    else:  # text in no encoding an office uses (neither UTF-8 nor GB18030)
        path.write_bytes("code,name,lon,lat\n".encode() + b"1,\xff\xfe\x80\x80\xfa\xfb\xfc,119.4,28.4\n" * 3)
    return path


def _is_path(param) -> bool:
    return "Path" in str(param.bare_type())


def _inputs(path, cmd) -> list:
    """The file parameters a command reads (required ones: the files the command is about)."""
    writes = WRITES_TO.get(path)
    return [p for p in cmd.params if _is_path(p) and p.required and p.name not in OUTPUTS and p.name != writes]


def _args(path, cmd, bad: Path, tmp: Path, database: str, *, bad_inputs: bool) -> list[str]:
    args = [*path]
    for p in cmd.params:
        if p.name == "database":
            args += ["--database", database]
            continue
        if not p.required:
            continue
        if _is_path(p):
            is_input = p in _inputs(path, cmd)
            value = str(bad) if (is_input and bad_inputs) else str(tmp / f"out-{p.name}{bad.suffix or '.csv'}")
        else:
            value = VALUES.get(p.name, "1" if "int" in str(p.bare_type()) else "x")
        if p.param_type_name == "argument":
            args.append(value)
        else:
            args += [p.opts[0], value]
    return args + EXTRA.get(path, [])


def _check(result, bad: Path, args) -> None:
    text = result.output
    assert result.exit_code not in (0, None), (args, text)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception), text)
    assert "Traceback" not in text, (args, text)
    if result.exit_code == 2 and text.startswith("Usage:"):
        return  # a new command that wants more options (add them to EXTRA to reach its files)
    lines = [line for line in text.splitlines() if re.search(r"\berror\b", line, re.IGNORECASE)]
    assert lines, (args, text)
    assert bad.name in re.sub(r"\s+", "", text.replace("│", "")) or bad.parent.name in text, (args, text)


@pytest.fixture(autouse=True)
def wide_consoles(monkeypatch):
    """The command line's consoles as wide as a log: a table's file column is not wrapped
    (their width is fixed when they are made, so ``COLUMNS`` set for one run comes too late)."""
    monkeypatch.setattr(common.err, "width", 400)
    monkeypatch.setattr(common.out, "width", 400)


@pytest.fixture(scope="module")
def good_database(tmp_path_factory) -> str:
    """A migrated, empty SQLite database: bad input files meet a working store."""
    path = tmp_path_factory.mktemp("db") / "good.db"
    Store(f"sqlite:///{path}").migrate()
    return f"sqlite:///{path}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_command_refuses_a_bad_database_in_one_line(kind, tmp_path):
    runner = CliRunner()
    for i, (path, cmd) in enumerate(COMMANDS):
        folder = tmp_path / str(i)  # a bad file of its own: init makes a database of some
        folder.mkdir()
        bad = _bad_file(folder, kind, ".db")
        args = _args(path, cmd, bad, folder, f"sqlite:///{bad}", bad_inputs=True)
        result = runner.invoke(app, args)
        if path == ("init",) and kind in ("missing", "empty"):  # SQLite: an empty file is an empty database
            assert result.exit_code == 0 and bad.exists(), result.output
            continue
        _check(result, bad, args)


READERS = [(path, cmd) for path, cmd in COMMANDS if _inputs(path, cmd)]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_command_reading_files_refuses_a_bad_one(kind, suffix, tmp_path, good_database):
    assert {p for p, _ in READERS} >= {("import",), ("locate",), ("events", "import")}
    runner = CliRunner()
    bad = _bad_file(tmp_path, kind, suffix)
    for path, cmd in READERS:
        args = _args(path, cmd, bad, tmp_path, good_database, bad_inputs=True)
        result = runner.invoke(app, args)
        _check(result, bad, args)
