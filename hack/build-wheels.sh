#!/usr/bin/env bash
# Keep wheels of the dependencies PyPI ships only as source and that take long to build (llama.cpp:
# ~10 min of C++ on 2 cores) in a wheelhouse outside the checkout, keyed by version. `make setup` installs
# with --find-links to it, so a fresh clone never compiles them again. uv's own cache proved unreliable
# for this: a fresh clone rebuilt llama-cpp-python although a built wheel sat in ~/.cache/uv.
set -euo pipefail
WHEELHOUSE=${1:-"$HOME/.cache/kubetune/wheels"}
PYTHON=${PYTHON:-python3}
# Keep in step with the pin in pyproject.toml (dev extra).
LLAMA_CPP_PYTHON_VERSION=0.3.36

mkdir -p "$WHEELHOUSE"
if ls "$WHEELHOUSE"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"-*.whl >/dev/null 2>&1; then
  exit 0
fi
# A wheel that uv built earlier is as good as a new one.
cached=$(find "$HOME/.cache/uv" -name "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION-*.whl" 2>/dev/null | head -n 1 || true)
if [ -n "$cached" ]; then
  cp "$cached" "$WHEELHOUSE/"
  echo "wheelhouse: llama-cpp-python $LLAMA_CPP_PYTHON_VERSION taken from the uv cache"
  exit 0
fi
if ! command -v cmake >/dev/null 2>&1 || ! command -v g++ >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq cmake g++ >/dev/null
fi
echo "wheelhouse: building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (llama.cpp from source, ~10 min once)"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps \
  "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -w "$WHEELHOUSE"
