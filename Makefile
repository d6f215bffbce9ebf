# The two commands of README.md: `make demo` (main job) and `make test` (everything).
# Each does its own set-up: a virtualenv in .venv, `npm ci` in js/, and an
# editable install that builds the JS bundles into mug/static/.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup chromium test lint test-js test-py demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python chromium
	cd js && npm ci --no-audit --no-fund --loglevel=error
	$(BIN)/python -m pip install --quiet -e ".[test]"

# Browser tests use Debian's Chromium (Playwright cannot download browsers here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

lint: setup
	$(BIN)/ruff check mug tests benchmarks

test-js: setup
	cd js && npm test

test-py: setup
	$(BIN)/pytest

test: lint test-js test-py

demo: setup
	$(BIN)/mug check-policy tests/fixtures/onnx/overcooked_lstm_rllib.onnx --steps 200 --reset-every 100

bench: setup
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/engine.py

clean:
	rm -rf $(VENV) js/node_modules mug/static
