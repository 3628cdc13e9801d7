# Every target works on a fresh machine: `install` builds .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test demo bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet 'torch==2.13.0' 'jax[cpu]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/lazycheck bound samples/two_layer_tanh.toml
	$(BIN)/lazycheck simulate samples/two_layer_tanh.toml --save demo-run.npz --plot demo-run.png
	$(BIN)/lazycheck verify samples/two_layer_tanh.toml

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check lazycheck tests benchmarks
	$(BIN)/ruff format --check lazycheck tests benchmarks

clean:
	rm -rf $(VENV) demo-run.npz demo-run.png .pytest_cache
