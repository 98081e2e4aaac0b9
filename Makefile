# mailcode-exporter: `make demo` and `make test` each set up everything they need first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test lint system-deps bench clean

$(STAMP): pyproject.toml setup.py exporter/parsers/_postfix_scan.c
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

setup: $(STAMP)

## demo: run the exporter on a built-in demo log and serve http://127.0.0.1:9841/metrics
demo: setup
	$(BIN)/mailcode-exporter demo

system-deps:
	./scripts/install-system-deps.sh --if-possible

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check exporter

## test: lint, then the whole suite (tests needing Postfix/Prometheus skip where they are absent)
test: system-deps setup lint
	$(BIN)/pytest -q

## bench: our daemon and replay against mtail and prometheus-postfix-exporter (installed if possible)
bench: setup
	EXTRA_PACKAGES="mtail prometheus-postfix-exporter" ./scripts/install-system-deps.sh --if-possible
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
