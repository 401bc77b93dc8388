"""The error hierarchy: every raise names whose fault it is, and the API answers accordingly."""

from __future__ import annotations

import ast
import logging

import pytest
from fastapi.testclient import TestClient

from gridgeo import errors
from gridgeo.api.main import create_app
from helpers.paths import ROOT

#: Modules allowed to raise the base class while someone replaces those raises (none now).
#: An entry must go as soon as its file raises the base class no more.
PENDING: set[str] = set()


def direct_raises(source: str, filename: str = "<source>") -> list[int]:
    """Line numbers of ``raise GridgeoError(...)`` / ``raise errors.GridgeoError`` in ``source``."""
    lines = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
        if name == "GridgeoError":
            lines.append(node.lineno)
    return sorted(lines)


def test_the_scan_finds_direct_raises():
    source = ("from gridgeo import errors\nfrom gridgeo.errors import GridgeoError, InvalidInput\n"
              "def f(x):\n    if x:\n        raise GridgeoError('bad')\n    raise errors.GridgeoError\n"
              "def g():\n    raise InvalidInput('fine')\n")
    assert direct_raises(source) == [5, 6]


def test_no_module_raises_the_base_class_directly():
    """Raise a subclass: InvalidInput (the caller's input), InternalError (a bug: 500, logged),
    ServiceUnavailable (503), NotFound, or a specific one added at the end of errors.py."""
    found = {}
    for folder in ("gridgeo", "api", "maps"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            lines = direct_raises(path.read_text(encoding="utf-8"), str(path))
            if lines:
                found[str(path.relative_to(ROOT))] = lines
    stale = {p for p in PENDING if (ROOT / p).exists() and p not in found}
    assert not stale, f"no direct raise left in {sorted(stale)}: remove them from PENDING"
    offenders = {p: lines for p, lines in found.items() if p not in PENDING}
    assert not offenders, f"raise a subclass of GridgeoError, not the base class: {offenders}"


def test_every_error_says_whose_fault_it_is():
    """Each class has its own problem type, and the status says 4xx (caller), 500 (bug) or 503."""
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.GridgeoError)]
    subclasses = [c for c in classes if c is not errors.GridgeoError]
    assert len({c.code for c in subclasses}) == len(subclasses)
    for c in subclasses:
        assert 400 <= c.status < 500 or c.status in (500, 503), c
    assert errors.InternalError.status == 500 and errors.ServiceUnavailable.status == 503


@pytest.mark.parametrize("drop, kwargs, match", [
    ([], {"band": (500, 300)}, "band"),
    ([], {"target": 0}, "target"),
    ([], {"exclaves": "keep"}, "exclaves"),
    ([], {"workload": {"households": -1}}, "weights"),
    (["code"], {}, "no 'code' column"),
])
def test_unusable_planner_arguments_are_invalid_input(tiny, drop, kwargs, match):
    from gridgeo.plan import divide

    with pytest.raises(errors.InvalidInput, match=match):
        divide(tiny["divisions"].drop(columns=drop), tiny["households"], **kwargs)


def test_a_missing_sample_is_invalid_input(tmp_path):
    from gridgeo.sample import sample_files

    with pytest.raises(errors.InvalidInput, match="GRIDGEO_SAMPLE_DIR"):
        sample_files(tmp_path)


# -- the API -----------------------------------------------------------------------------------

SECRET = "block 17 of plan 3 has owner -1 at /srv/gridgeo/plan/lifecycle.py"


@pytest.fixture
def client():
    """The real application with one throw-away route that raises what it is told to."""
    app = create_app()
    kinds = {"internal": errors.InternalError, "unavailable": errors.ServiceUnavailable,
             "invalid": errors.InvalidInput, "missing": errors.NotFound}

    @app.get("/test/raise/{kind}")
    def _raise(kind: str):
        raise kinds[kind](SECRET)

    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_an_internal_error_is_a_logged_500_that_tells_the_caller_nothing(client, caplog):
    with caplog.at_level(logging.ERROR, logger="gridgeo.api"):
        r = client.get("/test/raise/internal")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == "/problems/internal-error" and body["status"] == 500
    assert "block 17" not in r.text and "lifecycle" not in r.text and "Traceback" not in r.text
    logged = [rec for rec in caplog.records if rec.name == "gridgeo.api" and rec.levelno == logging.ERROR]
    assert len(logged) == 1 and "/test/raise/internal" in logged[0].getMessage()
    # with its traceback (as exc_text where the API's log filter has redacted it)
    rec = logged[0]
    trace = rec.exc_text or logging.Formatter().formatException(rec.exc_info)
    assert "Traceback" in trace and "gridgeo.errors.InternalError" in trace
    assert SECRET in trace  # the details are in the log, for whoever fixes it


@pytest.mark.parametrize("kind,status,code", [
    ("unavailable", 503, "service-unavailable"),
    ("invalid", 422, "invalid-input"),
    ("missing", 404, "not-found"),
])
def test_the_other_errors_answer_their_status_with_their_message(client, kind, status, code):
    r = client.get(f"/test/raise/{kind}")
    assert r.status_code == status
    assert r.json()["type"] == f"/problems/{code}" and r.json()["detail"] == SECRET


def test_open311_passes_internal_errors_on_as_logged_500s(client, monkeypatch, caplog):
    """Open311 answers the spec's error list for the caller's mistakes, but a bug behind it
    is still a bug: a logged 500 that tells the caller nothing."""
    from gridgeo.events import catalogue

    def broken(store):
        raise errors.InternalError(SECRET)

    monkeypatch.setattr(catalogue, "list_categories", broken)
    with caplog.at_level(logging.ERROR, logger="gridgeo.api"):
        r = client.get("/open311/v2/services.json")
    assert r.status_code == 500 and SECRET not in r.text
    assert r.json()["type"] == "/problems/internal-error"
    assert any(rec.name == "gridgeo.api" and "services.json" in rec.getMessage() for rec in caplog.records)
