# optiscale — `make help` lists the targets.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
OPTISCALE := $(VENV)/bin/optiscale
SAMPLES ?= ../shared/samples/optimetal
STORE ?= data/samples
PRESET ?= quick
WORKERS ?=
PACK ?= auto
SWEEP_OPTS = --pack $(PACK) $(if $(WORKERS),--workers $(WORKERS))
MLFLOW_DB := sqlite:///$(CURDIR)/mlflow/mlflow.db
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

sweep-data: install ## main job: data-scaling study (PRESET=quick|paper|FILE, PACK=K per device, WORKERS=N), fit, report
	$(OPTISCALE) sweep --preset $(PRESET) --axis D $(SWEEP_OPTS)

sweep-params: install ## parameter-scaling study (PRESET, PACK, WORKERS), fit, report
	$(OPTISCALE) sweep --preset $(PRESET) --axis N $(SWEEP_OPTS)

sweep-grid: install ## the 2-D (N, D) study (PRESET, PACK, WORKERS), fit, report
	$(OPTISCALE) sweep --preset $(PRESET) --axis ND $(SWEEP_OPTS)

sweep-transfer: install ## cheap-to-expensive transfer study (pretraining runs P, then T), fit D_T, report
	$(OPTISCALE) sweep --preset transfer --axis T $(SWEEP_OPTS)

ui: install ## MLflow UI on the local tracking store: http://127.0.0.1:5000
	@echo "training runs (MLflow's Model training view): http://127.0.0.1:5000/#/experiments?workflowType=machine_learning"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_DB) --host 127.0.0.1 --port 5000

import-samples: install ## import the published sample records (../shared) into data/samples
	$(OPTISCALE) data import $(SAMPLES) --out $(STORE)
	$(OPTISCALE) data info $(STORE)

test: install ## the default test suite (slow tests excluded; under 10 minutes on 2 cores)
	$(PY) -m pytest -m "not slow"

test-slow: install ## the slow tests only (real DDP, sweeps on PostgreSQL + mlflow server and on SLURM); CI runs them too
	$(PY) -m pytest -m slow

test-all: install ## every test
	$(PY) -m pytest

lint: install ## ruff: lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install ## mypy on the packages (settings in pyproject.toml)
	$(VENV)/bin/mypy

bench-data: install ## data-layer figures into reports/bench_data.json
	$(OPTISCALE) bench data --json reports/bench_data.json

clean: ## remove caches (keeps .venv, data/ and mlflow/)
	rm -rf .pytest_cache .ruff_cache .mypy_cache build *.egg-info
	find . -name __pycache__ -not -path './.venv/*' -exec rm -rf {} +

STUDY ?= experiments/configs/studies/default.yaml
OPTUNA_DB ?= sqlite:///$(CURDIR)/mlflow/optuna.db

QUICK_STORE := data/surrogate-quick

study: install ## Optuna capacity study (STUDY=experiments/configs/studies/capacity.yaml for the preset)
	@[ "$(STUDY)" != experiments/configs/studies/default.yaml ] || \
	  $(OPTISCALE) data generate --n 4000 --seed 0 --out $(QUICK_STORE) --grid-points 201 --quiet
	$(OPTISCALE) study --config $(STUDY)

dashboard: install ## optuna-dashboard on the study storage: http://127.0.0.1:8080
	$(VENV)/bin/optuna-dashboard $(OPTUNA_DB) --host 127.0.0.1 --port 8080


.PHONY: help install sweep-data sweep-params sweep-grid sweep-transfer ui import-samples test test-slow test-all study dashboard lint typecheck bench-data clean
