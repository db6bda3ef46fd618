#!/usr/bin/env bash
# Wheels for `bench/gpu_check.sh --wheels DIR` on a GPU machine that cannot reach PyPI but has a Python with
# CUDA torch (and accelerate, numpy, pyyaml, jinja2, prometheus-client, tokenizers, safetensors) installed:
# the packages the trainer needs beyond those, at uv.lock's versions and sha256 hashes (pip --require-hashes:
# nothing floats), for the target machine's Python (default 3.12, x86_64 manylinux).
#
#   hack/gpu-wheels.sh [DIR] [--python-version 3.12]
#
# bitsandbytes' wheel holds one 20-27 MB kernel library per CUDA release (11.8 ... 13.2) and ROCm; only the
# CUDA 13 ones (KEEP_CUDA, default 13, the CUDA major of the target's torch) are kept, so that the folder
# stays small enough to copy (~25 MB instead of ~75 MB). pip does not check a wheel's RECORD, so the
# trimmed wheel installs; the dropped libraries are ones that torch build would never load.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.whl}
PYVER=3.12
[[ ${2:-} == --python-version ]] && PYVER=$3
KEEP_CUDA=${KEEP_CUDA:-13}
PACKAGES="pydantic pydantic-core annotated-types typing-inspection boto3 botocore s3transfer jmespath
  transformers huggingface-hub httpx2 httpcore2 truststore peft bitsandbytes"

CACHE=${KUBETUNE_CACHE:-$HOME/.cache/kubetune}
UV_VERSION=$(sed -n 's/^uv==\([0-9.]*\) .*/\1/p' hack/uv-requirements.txt)
UV=$CACHE/uv-$UV_VERSION/bin/uv
[[ -x $UV ]] || { echo "pinned uv missing: run make setup first" >&2; exit 1; }

requirements=$(mktemp)
trap 'rm -f "$requirements"' EXIT
# uv.lock -> requirement blocks ("name==version ; marker \" + hash lines); keep the listed packages.
"$UV" export --frozen --all-extras --no-emit-project --no-emit-workspace --format requirements-txt \
  | python3 -c '
import re, sys
wanted = set(sys.argv[1].split())
blocks = re.split(r"\n(?=[a-z0-9])", sys.stdin.read())
kept = [b for b in blocks if (m := re.match(r"([A-Za-z0-9_.-]+)==", b)) and m.group(1).lower() in wanted]
missing = wanted - {re.match(r"([A-Za-z0-9_.-]+)==", b).group(1).lower() for b in kept}
if missing:
    sys.exit(f"not in uv.lock: {sorted(missing)}")
print("\n".join("\n".join(l for l in b.splitlines() if not l.lstrip().startswith("#")) for b in kept))
' "$PACKAGES" >"$requirements"

rm -rf "$DIR" && mkdir -p "$DIR"
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download --quiet --disable-pip-version-check --no-deps --require-hashes --only-binary=:all: \
  --python-version "$PYVER" --implementation cp "${platforms[@]}" --platform any -d "$DIR" -r "$requirements"

for wheel in "$DIR"/bitsandbytes-*.whl; do
  drop=$(python3 -c 'import sys, zipfile
print("\n".join(n for n in zipfile.ZipFile(sys.argv[1]).namelist()
      if "/libbitsandbytes_" in n and "_cpu" not in n and f"_cuda{sys.argv[2]}" not in n))' "$wheel" "$KEEP_CUDA")
  [[ -n $drop ]] && zip -q -d "$wheel" $drop
done
du -sh "$DIR"
