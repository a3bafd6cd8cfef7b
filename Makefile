# dlwild: `make demo` runs the platform at smoke size, `make test` lints (ruff) and runs the test suite,
# `make bench` the benchmarks.
# Each target creates .venv and installs the project when needed. TORCH_SPEC picks the torch build
# (default: the CPU wheel); e.g. make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.dlwild-installed

.PHONY: install demo test lint bench tensorboard clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m serving.demo --with-cluster-demo

test: lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m benchmarks

tensorboard: $(STAMP)
	$(BIN)/python -m cluster tensorboard --logdir runs

clean:
	rm -rf $(VENV) .pytest_cache
