# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv/ first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WHEELHOUSE := $(HOME)/.cache/kubetune/wheels
EXTRAS := operator,trainer,evaluator,dev

.PHONY: setup test lint typecheck unit e2e demo crds docs clean

setup: $(STAMP)

# uv resolves and installs the ~3 GB of torch/CUDA wheels several times faster than pip; its cache
# (~/.cache/uv) makes the next fresh clone's setup take seconds.
$(STAMP): pyproject.toml hack/build-wheels.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv>=0.4"
	PYTHON=$(BIN)/python bash hack/build-wheels.sh $(WHEELHOUSE)
	$(BIN)/uv pip install --python $(BIN)/python --find-links $(WHEELHOUSE) -e ".[$(EXTRAS)]"
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m "not e2e" tests

e2e: setup
	$(BIN)/pytest -m e2e tests

test: lint typecheck
	$(BIN)/pytest tests

crds: setup
	$(BIN)/kubetune crds --output-dir crds
	$(BIN)/python hack/sync-chart-crds.py
	$(BIN)/python hack/gen_api_docs.py > docs/api.md

# Fine-tunes and evaluates end to end on the local stack (docs/demo.md); starts the stack when needed.
demo: setup
	$(BIN)/kubetune demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
