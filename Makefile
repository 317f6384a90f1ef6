# optiscale — `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
OPTISCALE := $(VENV)/bin/optiscale
SAMPLES ?= ../shared/samples/optimetal
STORE ?= data/samples
export MLFLOW_DISABLE_TELEMETRY := true

.DEFAULT_GOAL := help

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## create .venv: torch==2.13.0 first, then the project and its tools

import-samples: install ## main job (for now): import the published sample records into data/samples
	$(OPTISCALE) data import $(SAMPLES) --out $(STORE)
	$(OPTISCALE) data info $(STORE)

test: install ## run the test suite (slow tests included)
	$(PY) -m pytest

test-fast: install ## run the tests without the slow ones
	$(PY) -m pytest -m "not slow"

lint: install ## ruff: lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench-data: install ## data-layer figures into reports/bench_data.json
	$(OPTISCALE) bench data --json reports/bench_data.json

clean: ## remove caches (keeps .venv, data/ and mlflow/)
	rm -rf .pytest_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -not -path './.venv/*' -exec rm -rf {} +

.PHONY: help install import-samples test test-fast lint bench-data clean

STUDY ?= experiments/configs/studies/default.yaml
OPTUNA_DB ?= sqlite:///$(CURDIR)/mlflow/optuna.db

study: install ## Optuna capacity study (STUDY=experiments/configs/studies/capacity.yaml for the preset)
	$(OPTISCALE) study --config $(STUDY)

dashboard: install ## optuna-dashboard on the study storage: http://127.0.0.1:8080
	$(VENV)/bin/optuna-dashboard $(OPTUNA_DB) --host 127.0.0.1 --port 8080

.PHONY: study dashboard
