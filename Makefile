# Two commands for a newcomer: `make demo` (the simulated factory into the embedded store)
# and `make test` (lint, types, layering contracts and the whole test suite). Both install every
# extra (`.[all]`: collector and gateway); a reviewer needs only `pip install 'shopfloor[verify]'`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.installed-run
DEV_STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck contracts pytest bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[all]'
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[all,dev]'
	touch $@ $(RUN_STAMP)

# the dashboard on port 8080 (PORT=8090 make demo, or make demo PORT=8090, to change it)
demo: $(RUN_STAMP)
	$(BIN)/shopfloor demo $(if $(PORT),--port $(PORT))

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

contracts: $(DEV_STAMP)
	$(BIN)/lint-imports

pytest: $(DEV_STAMP)
	$(BIN)/pytest -n 2 --dist loadgroup

test: lint typecheck contracts pytest

bench: $(DEV_STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build *.egg-info
