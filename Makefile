# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.contextd-installed
SAMPLE_QUERY ?= how are files cut into chunks by syntax

.PHONY: run test lint inspector clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch is pinned through constraints.txt (the CPU build; no CUDA downloads).
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

run: $(STAMP)
	$(BIN)/contextd add . --name contextd
	$(BIN)/contextd index contextd
	$(BIN)/contextd search "$(SAMPLE_QUERY)" -k 3

test: $(STAMP)
	$(BIN)/python -m pytest

# The MCP Inspector CLI (npm) as a third-party client; separate because it needs npm.
inspector: $(STAMP)
	VENV=$(VENV) bash bench/inspector.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy contextd connectors indexers

clean:
	rm -rf $(VENV) build *.egg-info
