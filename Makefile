# AnimaFlow Inference: one entry point for the tool chain, the tests and the demo.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: venv lint unit test demo demo-down serve nodes clean

venv: $(VENV)/.done

$(VENV)/.done: requirements.txt tests/infra/docker-collections.sh
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q -e ./control
	bash tests/infra/docker-collections.sh $(VENV)
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint

unit: venv
	$(BIN)/pytest -q tests/unit

# Everything: lint, unit, integration and Molecule; the last line is pytest's summary of all of it.
test: venv
	bash tests/infra/run-tests.sh

demo: venv
	bash tests/infra/demo.sh

demo-down:
	bash tests/infra/demo.sh down

serve: venv
	$(BIN)/animaflow serve

clean:
	rm -rf $(VENV) .cache .state
