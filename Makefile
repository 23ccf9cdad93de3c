# The two commands a newcomer needs: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup test test-slow test-all lint format docs data demo bench clean

setup: $(STAMP)

# Re-runs only when the pins or the package metadata change (idempotent).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch torchvision
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

# Style and types (mypy over the package); .ci/run runs it after the tests.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The API reference (docs/reference, mkdocstrings) into build/site; a warning fails it.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e '.[docs]'
	touch $@

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --quiet
	@echo "API reference: build/site/index.html"

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

# The tests marked slow (long soaks, waits for timeouts): .ci/run runs them after `make test`.
test-slow: setup
	$(BIN)/pytest -m slow

# Everything, slow tests included.
test-all: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -m ''

# The built-in data set: Debian's dataset-fashion-mnist (four IDX files).
data:
	@if ls $(FASHION_MNIST)/train-images-idx3-ubyte* >/dev/null 2>&1; then \
	  echo "Fashion-MNIST: $(FASHION_MNIST)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get install -y -q dataset-fashion-mnist || \
	  { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }; \
	else \
	  echo "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist', or put the"; \
	  echo "four IDX files (train/t10k images/labels) in a folder and pass --data fashion-mnist:FOLDER"; \
	  exit 1; \
	fi

# The main job: train a VGG on Fashion-MNIST, evaluate it with the paper's protocols,
# print the table; results in runs/demo/results.json. Running it again re-evaluates.
demo: setup data
	$(BIN)/vggnet demo --out runs/demo

# Ours against torchvision, every section, this machine (about 10 minutes on 2 CPU cores).
bench: setup
	$(BIN)/vggnet bench --json runs/bench.json --plot runs/bench.png

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
