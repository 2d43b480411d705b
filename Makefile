# MemStack task entry point. `make help` lists every target.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help install dev test lint fmt unit integration migrate infra-up infra-down infra-status \
        chart-test alerts-test e2e node-e2e bench tools

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

install: ## Create .venv and install the service with its dev tools (idempotent)
	@bash ci/install-python.sh

tools: ## Install helm 3 and 4, promtool and the chart linters (idempotent)
	@bash ci/install-tools.sh

.PHONY: image
image: ## Build the MemStack image with buildah (offline, local Debian base) and export OCI archives
	@bash ci/image.sh

dev: install ## Run the service locally: start PostgreSQL, Redis and Neo4j, migrate, run API (reload) and worker
	@bash ci/dev.sh

test: ## Install and run every test from nothing (lint, unit, integration, chart, alerts, e2e)
	@bash ci/test.sh

lint: install ## ruff (lint + format check) and mypy --strict over code and tests
	$(VENV)/bin/ruff check service worker tests
	$(VENV)/bin/ruff format --check service worker tests
	$(VENV)/bin/mypy

fmt: install ## Format and auto-fix with ruff
	$(VENV)/bin/ruff format service worker tests
	$(VENV)/bin/ruff check --fix service worker tests

unit: install ## Unit tests only (no servers needed)
	$(VENV)/bin/pytest tests/unit

integration: install ## Integration tests against the local servers (run `make infra-up` first)
	$(VENV)/bin/pytest tests/integration

migrate: install ## Apply database migrations and Neo4j constraints
	$(VENV)/bin/memstack migrate

infra-up: ## Install (if needed) and start PostgreSQL, Redis and Neo4j on loopback
	@bash ci/infra.sh up

infra-down: ## Stop the servers started by infra-up
	@bash ci/infra.sh down

infra-status: ## Show which local servers are running
	@bash ci/infra.sh status

chart-test: ## Lint, render and validate the Helm chart on Helm 3 and Helm 4
	@bash ci/chart-test.sh

alerts-test: ## promtool checks and unit tests for the alert rules, then the live alert test
	@bash ci/alerts-test.sh

e2e: ## helm install/upgrade/rollback against a real API server (built from source, kwok nodes)
	@bash ci/e2e.sh

node-e2e: ## The chart's own image as real pods on a real node (kubelet, containerd, runc, CNI, kube-proxy, CoreDNS)
	@bash ci/node-e2e.sh

bench: install ## Benchmarks: ratios against a baseline measured in the same run
	@bash ci/bench.sh
