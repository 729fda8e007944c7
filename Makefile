# Two commands matter: `make demo` (the whole pipeline locally) and `make test` (what CI runs).
# Both create .venv and install what they need; only make and a Python of Lambda's runtime
# version (python3.13) are required: make/find-python looks on PATH, then in pyenv.

PYTHON_VERSION := 3.13
VENV := .venv
BIN := $(VENV)/bin
# Reinstall when the project or a layer's pins change: the dev install is constrained to them.
PINS := pyproject.toml layers/core/requirements.txt layers/imaging/requirements.txt \
	layers/worker/requirements.txt
INSTALLED := $(VENV)/.installed-$(shell cat $(PINS) | cksum | cut -d' ' -f1)
# sam (and `sam build` without Docker, which needs a python3.13 on PATH) come from the venv.
export PATH := $(abspath $(BIN)):$(PATH)

IMAGE ?=
PORT ?= 3000

.PHONY: install demo serve test test-unit lint typecheck pytest openapi bench bench-throughput bench-volume database-ca clean

$(INSTALLED): $(PINS)
	python=$$(make/find-python $(PYTHON_VERSION)) && $$python -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' \
		-c layers/core/requirements.txt -c layers/imaging/requirements.txt \
		-c layers/worker/requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

install: $(INSTALLED)

demo: install
	$(BIN)/photo-restore demo $(if $(IMAGE),"$(IMAGE)")

serve: install
	$(BIN)/photo-restore serve --port $(PORT)

test: install lint typecheck pytest

test-unit: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The packages and tests, the benchmarks, then each handler on its own (every one is a module
# named `app`).
typecheck: install
	$(BIN)/mypy
	$(BIN)/mypy benchmarks
	for handler in functions/*/app.py; do $(BIN)/mypy $$handler || exit 1; done

pytest: install
	$(BIN)/pytest

openapi: install
	$(BIN)/python scripts/export_openapi.py

# The API's cold start is measured on the build output, as Lambda loads it.
bench: install sam-build
	$(BIN)/python benchmarks/bench_preprocess.py
	$(BIN)/python benchmarks/bench_hot_paths.py

# 300 restores through the local stack under a provider limit, with and without PgBouncer.
bench-throughput: install
	$(BIN)/python benchmarks/bench_throughput.py

# Provider calls per ready restoration with a failure injected at each step after the call.
.PHONY: bench-faults
bench-faults: install
	$(BIN)/python benchmarks/bench_faults.py

# Every hot path on a seeded production-volume database (~4 min to seed) against an empty one.
bench-volume: install
	$(BIN)/python benchmarks/bench_volume.py

# The managed databases' TLS CA bundles, into the DatabaseCaLayer (layers/database-ca/README.md).
database-ca:
	curl -fsSL -o layers/database-ca/supabase-prod-ca-2021.crt \
	  https://supabase-downloads.s3-ap-southeast-1.amazonaws.com/prod/ssl/prod-ca-2021.crt
	curl -fsSL -o layers/database-ca/rds-global-bundle.pem \
	  https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache demo-output

include make/sam.mk
