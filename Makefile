# One command each: `make serve` runs an engine node with the demo exam on
# embedded defaults; `make test` runs the whole test suite. Both create .venv.
PY ?= python3
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
	$(BIN)/examwire serve --demo

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)
