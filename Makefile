# The README's two commands: `make run` and `make test`.
#
# Installs go through uv into .venv, pinned by the lock files in requirements/ (run.txt for the
# service, test.txt adds the test tools); `make lock` writes them anew from pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
HOST ?= 127.0.0.1
PORT ?= 8000
# A stamp per set of inputs: a changed pyproject, setup.py or lock file installs again.
INPUTS := pyproject.toml setup.py
RUN_STAMP := $(VENV)/.run-$(shell cat $(INPUTS) requirements/run.txt | sha1sum | cut -c1-12)
TEST_STAMP := $(VENV)/.test-$(shell cat $(INPUTS) requirements/test.txt | sha1sum | cut -c1-12)

.PHONY: run test setup system bench clean sample lock

$(UV):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv

$(RUN_STAMP): $(INPUTS) requirements/run.txt | $(UV)
	$(UV) pip install -q --python $(BIN)/python -c requirements/run.txt -e .
	rm -f $(VENV)/.run-*
	touch $@

$(TEST_STAMP): $(INPUTS) requirements/test.txt | $(UV)
	$(UV) pip install -q --python $(BIN)/python -c requirements/test.txt -e '.[test]'
	rm -f $(VENV)/.test-* $(VENV)/.run-*
	touch $@

lock: $(UV)
	$(UV) pip compile -q pyproject.toml --python-version 3.11 -o requirements/run.txt
	$(UV) pip compile -q pyproject.toml --python-version 3.11 --extra test -o requirements/test.txt

setup: $(TEST_STAMP)

## Set up, load the sample township into ./gridgeo.db if it is empty, print the demo users' tokens,
## and serve on 127.0.0.1:8000.
run: $(RUN_STAMP)
	$(BIN)/gridgeo init --sample
	$(BIN)/gridgeo users demo
	$(BIN)/gridgeo serve --host $(HOST) --port $(PORT)

system:
	bash scripts/system-deps.sh

## Set up (Python and system packages) and run the whole test suite, SQLite and PostgreSQL,
## one worker process per core (pytest-xdist), each test file kept in one worker so that its
## module-scoped browser and servers start once.
test: $(TEST_STAMP) system
	$(BIN)/python -m pytest -n auto --dist loadfile

sample: $(RUN_STAMP)
	$(BIN)/python data/make_sample.py

## Every benchmark (several minutes; the planner's peers come from the bench extra).
bench: $(TEST_STAMP)
	$(UV) pip install -q --python $(BIN)/python -c requirements/test.txt -e '.[test,bench]'
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) gridgeo.db gridgeo.db-wal gridgeo.db-shm .pytest_cache
