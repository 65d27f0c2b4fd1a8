# Nova — every entry point a developer or CI needs. Install steps live here and in scripts/,
# never in someone's shell history.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test lint bench services frontend serving up down clean

install: $(VENV)/.installed

$(VENV)/.installed: backend/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -e "backend[rag,dev]"
	touch $@

## Start the embedded platform: vLLM CPU + gateway + UI on one port (http://127.0.0.1:8080).
run: install frontend
	scripts/run.sh

## Install everything and run every test (lint, types, unit, integration, e2e, deploy checks).
test: install services
	scripts/test.sh

lint: install
	$(VENV)/bin/ruff check backend
	$(VENV)/bin/ruff format --check backend
	cd backend && ../$(VENV)/bin/mypy nova

services:
	scripts/ensure-services.sh

frontend:
	scripts/build-frontend.sh

serving:
	model-serving/cpu/install.sh

bench: install
	scripts/bench.sh

up:
	docker compose -f infra/docker/docker-compose.yml --env-file infra/docker/.env up -d

down:
	docker compose -f infra/docker/docker-compose.yml --env-file infra/docker/.env down

clean:
	rm -rf $(VENV) frontend/dist frontend/node_modules
