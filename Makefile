# The two commands of README.md: `make demo` (main job: the demo study on http://127.0.0.1:8000/)
# and `make test` (everything).
# Each does its own set-up: a virtualenv in .venv, `npm ci` in js/, and an
# editable install that builds the JS bundles into mug/static/.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup chromium test lint test-js test-py test-nb demo check-policy bench clean

STAMP := $(VENV)/.mug-installed

# Installed once per change of the dependency lists; the JS bundle is rebuilt on every run (under a second).
$(STAMP): pyproject.toml js/package.json js/package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	cd js && npm ci --no-audit --no-fund --loglevel=error
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

setup: chromium $(STAMP)
	cd js && npm run --silent build

# Browser tests use Debian's Chromium (Playwright cannot download browsers here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-js: setup
	cd js && npm test

test-py: setup
	$(BIN)/pytest

test-nb: setup
	$(BIN)/pytest --nbval notebooks/ --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider

test: lint test-js test-py test-nb

demo: setup
	$(BIN)/mug demo --data-dir mug-demo-data

check-policy: setup
	$(BIN)/mug check-policy tests/fixtures/onnx/overcooked_lstm_rllib.onnx --steps 200 --reset-every 100

bench: setup
	$(BIN)/python benchmarks/inference.py
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/server_load.py

clean:
	rm -rf $(VENV) js/node_modules mug/static mug-demo-data
