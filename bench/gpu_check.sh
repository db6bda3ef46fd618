#!/usr/bin/env bash
# GPU readiness check (bench/gpu_check.py): on a machine with one NVIDIA GPU, the repository and PyPI,
# installs the locked environment with the repository's pinned uv (as `make setup` does, but only the
# trainer and qlora extras and the devtools group: no llama.cpp compile), then trains a random ~1B Llama
# with ddp, fsdp and qlora and prints tokens/s, MFU and peak memory against the estimate. < 8 minutes.
#
#   bench/gpu_check.sh [--json figures.json] [--steps N ...]
#   bench/gpu_check.sh --cpu-smoke        # no install (uses .venv as it is), tiny model on CPU
#   bench/gpu_check.sh --wheels DIR ...   # no PyPI: $PYTHON (default python3) already has CUDA torch and
#                                         # accelerate; DIR from hack/gpu-wheels.sh adds the rest, pinned
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ${1:-} == --wheels ]]; then
  # An offline GPU machine (no PyPI): the machine's Python and torch, uv.lock's versions of the rest
  # (hack/gpu-wheels.sh), the project's code from the checkout.
  PYTHON=${PYTHON:-python3}
  SITE=$(mktemp -d)
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-compile \
    --target "$SITE" "$2"/*.whl
  export PYTHONPATH=$SITE:$PWD/operator:$PWD/trainer:$PWD/devtools${PYTHONPATH:+:$PYTHONPATH}
  shift 2
  exec "$PYTHON" bench/gpu_check.py "$@"
fi
if [[ " $* " != *" --cpu-smoke "* ]]; then
  PYTHON=${PYTHON:-python3}
  CACHE=${KUBETUNE_CACHE:-$HOME/.cache/kubetune}
  UV_VERSION=$(sed -n 's/^uv==\([0-9.]*\) .*/\1/p' hack/uv-requirements.txt)
  UV=$CACHE/uv-$UV_VERSION/bin/uv
  if [[ ! -x $UV ]]; then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps --upgrade \
      --target "$CACHE/uv-$UV_VERSION" -r hack/uv-requirements.txt
  fi
  # --locked: exactly uv.lock's versions and hashes; --inexact: an existing full .venv stays whole.
  UV_PROJECT_ENVIRONMENT=.venv UV_PYTHON_DOWNLOADS=never "$UV" sync --locked --inexact --python "$PYTHON" \
    --extra trainer --extra qlora --group devtools
fi
exec .venv/bin/python bench/gpu_check.py "$@"
