# The two set-up commands of the README:
#   make demo   install everything, prepare Fashion-MNIST, train the default config on 2 ranks
#   make test   install everything, lint (ruff, configured in pyproject.toml), run the test suite (.ci/run calls this)
#   make test-openmpi   the MPI tests again under Open MPI (Debian's openmpi-bin, mpi4py built
#               against it in .venv-openmpi; .ci/run calls it after make test)
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

.PHONY: demo test install data test-openmpi

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

# Open MPI: Debian's packages, mpi4py compiled against them in a separate venv (.venv keeps the
# mpich wheel), the MPI tests launched with Open MPI's mpirun ($LUCID_MPIEXEC). Absolute paths:
# .venv/bin (first on PATH) has the mpich wheel's own mpirun and mpicc. A process started
# without mpirun (a world of one) needs ssh on PATH: Open MPI 4's singleton start looks it up. lucid's runtime
# dependencies come from pyproject.toml without mpi4py/mpich, which would bring a second MPI.
OMPI_BIN ?= /usr/bin
OMPI_VENV := .venv-openmpi
OMPI_ENV := LUCID_MPIEXEC=$(OMPI_BIN)/mpirun OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
MPI_TESTS := tests/test_dist_*.py tests/test_train_consistency.py
NOT_MPI_DEPS := import tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; \
	print("\n".join(d for d in deps if not d.startswith(("mpi4py", "mpich"))))

$(OMPI_VENV)/.installed: pyproject.toml
	@if ! $(OMPI_BIN)/mpirun --version 2>/dev/null | grep -q "Open MPI" || [ ! -x $(OMPI_BIN)/mpicc ] || ! command -v ssh >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq openmpi-bin libopenmpi-dev openssh-client; \
	fi
	$(PYTHON) -m venv $(OMPI_VENV)
	$(OMPI_VENV)/bin/python -m pip install -q --upgrade pip
	$(OMPI_VENV)/bin/python -c '$(NOT_MPI_DEPS)' > $(OMPI_VENV)/requirements.txt
	$(OMPI_VENV)/bin/python -m pip install -q -r $(OMPI_VENV)/requirements.txt pytest pytest-timeout
	MPICC=$(OMPI_BIN)/mpicc $(OMPI_VENV)/bin/python -m pip install -q --no-binary mpi4py mpi4py
	$(OMPI_VENV)/bin/python -m pip install -q --no-deps -e .
	$(OMPI_VENV)/bin/python -c 'from mpi4py import MPI; v = MPI.Get_library_version(); assert "Open MPI" in v, v'
	touch $@

test-openmpi: $(OMPI_VENV)/.installed
	$(OMPI_ENV) $(OMPI_VENV)/bin/python -m pytest -q $(MPI_TESTS)
