# Every target works on a fresh machine: `install` builds .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
DEMO_OUT := demo-run

.PHONY: install test demo bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,dask]'
	$(BIN)/python -m pip install --quiet 'torch==2.13.0' 'jax[cpu]'
	touch $(STAMP)

# the demo needs lazycheck alone, not the dev tools (a full install serves it too)
$(DEMO_STAMP): pyproject.toml
	@if [ -f $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then touch $@; else \
		$(PYTHON) -m venv $(VENV) && \
		$(BIN)/python -m pip install --quiet --disable-pip-version-check -e . && \
		touch $@; fi

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(DEMO_STAMP)
	$(BIN)/lazycheck bound samples/two_layer_tanh.toml
	$(BIN)/lazycheck simulate samples/two_layer_tanh.toml --save $(DEMO_OUT).npz --plot $(DEMO_OUT).png
	$(BIN)/lazycheck verify samples/two_layer_tanh.toml
	@echo "demo: wrote $(CURDIR)/$(DEMO_OUT).npz (the run's data) and $(CURDIR)/$(DEMO_OUT).png (its figure)"

bench: $(STAMP)
	$(BIN)/python -m benchmarks

lint: $(STAMP)
	$(BIN)/ruff check lazycheck tests benchmarks samples
	$(BIN)/ruff format --check lazycheck tests benchmarks samples

clean:
	rm -rf $(VENV) demo-run.npz demo-run.png .pytest_cache
