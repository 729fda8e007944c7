# Two commands matter: `make demo` (the whole pipeline locally) and `make test` (what CI runs).
# Both create .venv and install what they need; only Python 3.11+ and make are required.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
# sam (and `sam build` without Docker, which needs python3.11) must come from the venv.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo serve test lint typecheck pytest openapi bench clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(INSTALLED)

demo: install
	$(BIN)/photo-restore demo $(IMAGE)

serve: install
	$(BIN)/photo-restore serve

test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The package, then each handler on its own (every one is a module named `app`).
typecheck: install
	$(BIN)/mypy
	for handler in functions/*/app.py; do $(BIN)/mypy $$handler || exit 1; done

pytest: install
	$(BIN)/pytest

openapi: install
	$(BIN)/python scripts/export_openapi.py

bench: install
	$(BIN)/python benchmarks/bench_preprocess.py

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache demo-output

include make/sam.mk
