# Two commands do everything: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

# torch first, from the CPU wheel, so that no requirement pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==$(TORCH_VERSION)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/harness run studies/quickstart.yaml

# The layer contracts (pyproject.toml, docs/architecture.md) first: a broken layer fails fast.
test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q --durations=25

# The edit loop: contracts and everything but the end-to-end studies.
test-fast: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check harness lightning_modules dashboards tests benchmarks

bench: install
	$(BIN)/python benchmarks/harness_overhead.py
	$(BIN)/python benchmarks/training_overhead.py

clean:
	rm -rf $(VENV) harness-runs .pytest_cache
