# AnimaFlow Inference: one entry point for the tool chain, the tests and the demo.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: venv lint unit test demo demo-down serve nodes clean cuda-llama-server

venv: $(VENV)/.done

$(VENV)/.done: requirements.txt tests/infra/docker-collections.sh
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q -e ./control
	bash tests/infra/docker-collections.sh $(VENV)
	touch $@

# Modules and module_utils run on the nodes' Python: the oldest of the supported OSes is 3.10
# (Ubuntu 22.04); tests/integration/test_lint.py derives it from animaflow_supported_os.
NODE_PYTHON_MIN := 3.10

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint
	$(BIN)/vermin --no-tips --violations --eval-annotations -t=$(NODE_PYTHON_MIN)- plugins/

unit: venv
	$(BIN)/pytest -q tests/unit

# Everything: lint, unit, integration and Molecule; the last line is pytest's summary of all of it.
test:
	bash tests/infra/run-tests.sh

# The Debian packages first (installed when missing, as root), then the venv: a fresh machine needs no
# set-up step of its own.
demo:
	bash tests/infra/system-packages.sh demo
	$(MAKE) -s venv
	bash tests/infra/demo.sh

demo-down:
	bash tests/infra/demo.sh down

# The real CUDA llama-server (b11312, sm_90) built and bundled by the llamacpp role, checked with ldd on
# a node without CUDA. About 40 min on 2 cores: run by hand, not part of `make test` (roles/llamacpp/README.md).
cuda-llama-server: venv
	bash tests/infra/cuda-llama-server.sh

serve: venv
	$(BIN)/animaflow serve

clean:
	rm -rf $(VENV) .cache .state
