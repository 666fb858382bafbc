# The two set-up commands of the README:
#   make demo   install everything, prepare Fashion-MNIST, train the default config on 2 ranks
#   make test   install everything, lint (ruff, configured in pyproject.toml), run the test suite (.ci/run calls this)
# Both create .venv with lucid and its dependencies; the MPI runtime (mpiexec) comes from
# the mpich wheel, so nothing but Python >= 3.11 is needed beforehand.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
NP ?= 2
CONFIG ?= configs/fashion_mnist_resnet.toml
FMNIST_SRC ?= /usr/share/datasets/fashion-mnist
FMNIST_OUT ?= data/fashion-mnist

.PHONY: demo test install data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("lucid needs Python >= 3.11, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed

# Fashion-MNIST's IDX files: from the Debian package when they are not there yet.
data: install
	@if [ ! -e "$(FMNIST_SRC)/train-images-idx3-ubyte.gz" ] && [ ! -e "$(FMNIST_SRC)/train-images-idx3-ubyte" ]; then \
	  echo "Fashion-MNIST is not in $(FMNIST_SRC): installing the Debian package dataset-fashion-mnist"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  ( $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist ) || { \
	    echo "Could not install dataset-fashion-mnist. Put the four IDX files (train-images-idx3-ubyte.gz," \
	         "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a folder" \
	         "and run: make demo FMNIST_SRC=/that/folder"; exit 1; }; \
	fi
	$(BIN)/python -m launch.prepare_data fashion-mnist --src $(FMNIST_SRC) --out $(FMNIST_OUT)

demo: data
	$(BIN)/mpiexec -n $(NP) $(BIN)/python -m launch.train --config $(CONFIG) --set data.root='"$(FMNIST_OUT)"'

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q
