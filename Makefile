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

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)
