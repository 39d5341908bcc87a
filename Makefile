# One command each: `make serve` runs an engine node with the demo exam on
# embedded defaults (`make serve PORT=8080 HOST=0.0.0.0` to change where it
# listens); `make test` runs the whole test suite. Both create .venv.
PY ?= python3
PORT ?= 8000
HOST ?= 127.0.0.1
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test install

$(BIN)/examwire: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(BIN)/examwire

serve: install
	$(BIN)/examwire serve --demo --host $(HOST) --port $(PORT)

# `make test` measures line coverage (pyproject.toml, [tool.coverage.*]) in the
# pytest process and in every engine, worker and command process the tests
# start, prints the report (files below 100 %, with their missing lines) and
# fails under the floor: COV_FLOOR % overall, and 100 % of the files in
# FULL_COVERAGE (checked on the same data once pytest has combined it into .coverage).
COV_FLOOR := 90
FULL_COVERAGE := engine/scoring.py,handlers/auth.py

test: install
	$(BIN)/python -m pytest --cov --cov-report=term-missing:skip-covered --cov-fail-under=$(COV_FLOOR) $(PYTEST_ARGS)
	$(BIN)/python -m coverage report --include=$(FULL_COVERAGE) --show-missing --fail-under=100
