# One command per habit. CI calls the same targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The egress proxy's own venv (services/hands/egress/proxy/): mitmproxy's pins conflict with loopd's.
EGRESS_VENV := .venv-egress
EGRESS_STAMP := $(EGRESS_VENV)/.installed

.PHONY: install docker image run up test lint format proto bench bench-install clean

# deploy/setup.sh owns the machine's set-up: each target names itself, and the script installs
# what that target needs (as root on Debian/Ubuntu) or says exactly what to install.
SETUP := bash deploy/setup.sh

install: $(STAMP) $(EGRESS_STAMP)

# Both distributions, editable: the client (client/) and the server (the root), which needs it.
$(STAMP): requirements.lock pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e ./client -e .
	touch $(STAMP)

$(EGRESS_STAMP): deploy/egress/requirements.lock
	test -x $(EGRESS_VENV)/bin/python || $(PYTHON) -m venv $(EGRESS_VENV)
	$(EGRESS_VENV)/bin/pip install --quiet --disable-pip-version-check -r deploy/egress/requirements.lock
	touch $(EGRESS_STAMP)

docker:
	$(SETUP) docker

image:
	$(SETUP) image

# Starts the embedded local stack and runs the demo agent to completion.
run:
	$(SETUP) run
	$(MAKE) --no-print-directory install
	$(BIN)/python -m services.local demo

# Serves the local stack on 127.0.0.1:$${LOOPD_PORT:-8080} until stopped.
up:
	$(SETUP) up
	$(MAKE) --no-print-directory install
	$(BIN)/python -m services.local up

test:
	$(SETUP) test
	$(MAKE) --no-print-directory install
	$(BIN)/pytest

lint:
	$(SETUP) lint
	$(MAKE) --no-print-directory install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services client harness tests bench

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The benchmarks compare loopd with DBOS and LangGraph, which only the benchmark environment installs.
bench-install: install
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.lock

bench:
	$(SETUP) bench
	$(MAKE) --no-print-directory bench-install
	$(BIN)/python -m bench.step
	$(BIN)/python -m bench.growth
	$(BIN)/python -m bench.recovery

proto: install
	$(BIN)/python -m services.hands.contract.proto.generate

clean:
	rm -rf $(VENV) $(EGRESS_VENV) .loopd .pytest_cache .mypy_cache .ruff_cache
