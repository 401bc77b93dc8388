# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test setup system bench clean sample

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

## Set up, load the sample township into ./gridgeo.db if it is empty, print the demo users' tokens,
## and serve on 127.0.0.1:8000.
run: $(STAMP)
	$(BIN)/gridgeo init --sample
	$(BIN)/gridgeo users demo
	$(BIN)/gridgeo serve --host $(HOST) --port $(PORT)

system:
	bash scripts/system-deps.sh

## Set up (Python and system packages) and run the whole test suite, SQLite and PostgreSQL.
test: $(STAMP) system
	$(BIN)/python -m pytest

sample: $(STAMP)
	$(BIN)/python data/make_sample.py

## Every benchmark (several minutes; the planner's peers come from the bench extra).
bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]'
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) gridgeo.db gridgeo.db-wal gridgeo.db-shm .pytest_cache
