# One command per habit. CI calls the same targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install docker image run up test lint format proto bench bench-install clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

docker:
	bash deploy/ensure-docker.sh

image: docker
	bash deploy/sandbox/build.sh

# Starts the embedded local stack and runs the demo agent to completion.
run: install image
	$(BIN)/python -m services.local demo

# Serves the local stack on 127.0.0.1:$${LOOPD_PORT:-8080} until stopped.
up: install image
	$(BIN)/python -m services.local up

test: install image
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services client

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The benchmarks compare loopd with DBOS and LangGraph, which only the benchmark environment installs.
bench-install: install
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.lock

bench: bench-install image
	$(BIN)/python -m bench.step
	$(BIN)/python -m bench.growth
	$(BIN)/python -m bench.recovery

proto: install
	$(BIN)/python -m services.hands.contract.proto.generate

clean:
	rm -rf $(VENV) .loopd .pytest_cache .mypy_cache .ruff_cache
