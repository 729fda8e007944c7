# SAM targets, included by the main Makefile (`include make/sam.mk`), whose `install` target
# creates the venv first.
# sam runs from the project venv: without Docker, `sam build` needs a python3.13 on PATH.
SAM_VENV ?= .venv
SAM_PATH := $(abspath $(SAM_VENV))/bin:$(PATH)
SAM ?= env PATH="$(SAM_PATH)" SAM_CLI_TELEMETRY=0 sam
SAM_PYTHON ?= $(SAM_VENV)/bin/python
SAM_BUILD_DIR ?= .aws-sam/build
SAM_CONFIG_ENV ?= default

.PHONY: sam-validate sam-build

sam-validate: install
	$(SAM) validate --lint --config-env $(SAM_CONFIG_ENV)

# `sam build` ships no .pyc, and Lambda's code dirs are read-only, so every cold start would
# compile every module again (0.8-1.2 s more per handler import, measured here). Compiling the
# build output once, with unchecked-hash .pyc (still valid after zipping changes the mtimes),
# removes that. `sam build` empties the build dir each time, so no stale .pyc survives a rebuild.
sam-build: install
	$(SAM) build --config-env $(SAM_CONFIG_ENV) --build-dir $(SAM_BUILD_DIR)
	$(SAM_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(SAM_BUILD_DIR)
