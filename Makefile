# The everyday commands. `make` alone lists them.
# Variables: APP=module:app for run-worker, VENV (default .venv).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
ATP := $(VENV)/bin/atp
APP ?=
SUITES ?=
SEED ?=
QUICK ?=
COMPOSE_FILE ?= compose.yaml
export VENV

.PHONY: help test lint fmt typecheck dev run-server run-worker run-scheduler chaos proto up down clean

help: ## list the targets
	@echo "usage: make TARGET [APP=module:app]"
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The stamp scripts/_venv.sh writes; rebuilt when pyproject.toml changes.
$(VENV)/.atp-installed-dev: pyproject.toml
	source scripts/_venv.sh && ensure_venv dev

test: ## run every check and the test suite with coverage (scripts/test.sh)
	bash scripts/test.sh

lint: $(VENV)/.atp-installed-dev ## ruff check, ruff format --check, mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHON=$(PY) bash scripts/typecheck.sh

fmt: $(VENV)/.atp-installed-dev ## format the code and apply ruff's safe fixes
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: $(VENV)/.atp-installed-dev ## mypy over atp.* (strict on atp.core)
	PYTHON=$(PY) bash scripts/typecheck.sh

dev: ## run `atp dev`: worker + scheduler on the embedded platform (scripts/dev.sh)
	bash scripts/dev.sh

run-server: $(VENV)/.atp-installed-dev ## run `atp server` (REST, console, gRPC)
	$(ATP) server

run-worker: $(VENV)/.atp-installed-dev ## run `atp worker APP` (APP=module:app); needs a shared transport
	$(ATP) worker $(APP)

run-scheduler: $(VENV)/.atp-installed-dev ## run `atp scheduler` (one leader among replicas)
	$(ATP) scheduler

chaos: ## run the chaos suites on every stack (SUITES="a b", SEED=n, QUICK=1); report in chaos/reports/
	source scripts/_venv.sh && ensure_venv dev,redis,nats,etcd,chaos
	$(PY) -m chaos run $(SUITES) $(if $(SEED),--seed $(SEED)) $(if $(QUICK),--quick)

proto: ## generate gRPC code from proto/atp/v1/*.proto (grpcio-tools, into sdk/wire/pb/)
	bash scripts/protos.sh

up: ## start the full stack with Docker (compose.yaml)
	@if [[ ! -f $(COMPOSE_FILE) ]]; then \
		echo "$(COMPOSE_FILE) does not exist yet: the Docker stack arrives with the" \
			"observability work; for now run 'make dev'" >&2; \
		exit 1; \
	fi; \
	docker compose -f $(COMPOSE_FILE) up -d

down: ## stop the Docker stack
	@if [[ ! -f $(COMPOSE_FILE) ]]; then \
		echo "$(COMPOSE_FILE) does not exist yet: there is no Docker stack to stop"; \
	else \
		docker compose -f $(COMPOSE_FILE) down; \
	fi

clean: ## remove caches, coverage and build output (keeps .venv and *.db)
	rm -rf .typecheck .mypy_cache .ruff_cache .pytest_cache .hypothesis htmlcov build dist
	rm -f .coverage .coverage.* coverage.xml
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -path ./$(VENV) -prune -o -name '*.egg-info' -type d -prune -exec rm -rf {} +
