# The two set-up commands of README.md: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## Install, then run the gateway with the embedded pagoPA simulator and a demo ente.
demo: $(STAMP)
	$(BIN)/ente-gateway demo

## Install (PostgreSQL and Chromium from Debian when run as root and missing), then run the whole suite.
test: $(STAMP)
	bash scripts/ensure-test-deps
	$(BIN)/pytest -q $(PYTEST_ARGS)

## Benchmarks: writes docs/benchmarks.md and docs/benchmarks.json.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache var *.sqlite3
