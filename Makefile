# The two set-up commands of the README: `make demo` (main job) and `make test` (test suite).
# Both create .venv with lucid and its dependencies (the MPI runtime comes from the mpich wheel).
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

.PHONY: test install

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("lucid needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q
