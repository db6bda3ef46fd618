#!/usr/bin/env bash
# GPU readiness check (bench/gpu_check.py): on a machine with one NVIDIA GPU, the repository and PyPI,
# installs the locked environment with the repository's pinned uv (as `make setup` does, but only the
# trainer and qlora extras and the devtools group: no llama.cpp compile), then trains a random ~1B Llama
# with ddp, fsdp and qlora and prints tokens/s, MFU and peak memory against the estimate. < 8 minutes.
#
#   bench/gpu_check.sh [--json figures.json] [--steps N ...]
#   bench/gpu_check.sh --cpu-smoke        # no install (uses .venv as it is), tiny model on CPU
set -euo pipefail
cd "$(dirname "$0")/.."

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
