#!/usr/bin/env bash
# The fresh-machine check: fails whenever a build would resolve anything that the checkout does not pin.
#   Go:     each hack/tools/<tool>/ module must resolve every package of its tools from go.mod + go.sum
#           alone: -mod=readonly (nothing may be added) and GOPROXY=off (nothing may be looked up).
#   Python: uv.lock must be exactly what pyproject.toml resolves to (re-resolved from scratch and
#           compared byte for byte) and complete for `uv sync --locked` (a dry run, offline).
# Go needs a warm module cache (run after `make tools`, as `make test` does) and downloads nothing, so on a
# cold cache it fails and says so; uv reads the package index only where its cache cannot answer.
#
# Usage: UV=path/to/uv hack/verify-pins.sh      (VERIFY_GO_TOOLS="helm minio" checks only those)
set -uo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-uv}"
failed=0

fail() {
  echo "verify-pins: FAIL: $1" >&2
  shift
  [[ $# -gt 0 ]] && printf '%s\n' "$@" | sed 's/^/    /' >&2
  failed=1
}

export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOPROXY=off
for tool in ${VERIFY_GO_TOOLS:-$(ls hack/tools)}; do
  dir="hack/tools/$tool"
  for f in go.mod go.sum; do
    [[ -f "$dir/$f" ]] || fail "$dir/$f is missing"
  done
  # `tool` is every package named by a `tool` directive; -deps walks all they import.
  if ! out="$(cd "$dir" && go list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' tool 2>&1 >/dev/null)"; then
    fail "$dir/go.sum or $dir/go.mod does not pin everything its tools build from (or the module cache is cold: run \`make tools\`)" "$(echo "$out" | head -n 8)"
  fi
done

if ! command -v "$UV" >/dev/null 2>&1; then
  fail "uv not found ($UV): run \`make setup\`"
else
  # `uv lock --check` trusts a lock that is merely satisfiable (a deleted dependency edge or wheel hash
  # passes it), so resolve again from scratch in a scratch copy and compare byte for byte. exclude-newer in
  # pyproject.toml makes the resolution reproducible; the cache answers offline, the index otherwise.
  scratch="$(mktemp -d)"
  # The workspace member's metadata is part of the resolution (devtools/: the local stack's package).
  mkdir -p "$scratch/devtools"
  cp pyproject.toml "$scratch/"
  cp devtools/pyproject.toml "$scratch/devtools/"
  if ! out="$(cd "$scratch" && { "$UV" lock --upgrade --offline 2>&1 || "$UV" lock --upgrade 2>&1; })"; then
    fail "pyproject.toml does not resolve (uv lock)" "$(echo "$out" | tail -n 6)"
  elif ! cmp -s "$scratch/uv.lock" uv.lock; then
    fail "uv.lock differs from what pyproject.toml resolves to: edited by hand or stale (regenerate it with \`make lock\`)" \
      "$(diff "$scratch/uv.lock" uv.lock | head -n 8)"
  fi
  rm -rf "$scratch"
  if ! out="$(UV_PROJECT_ENVIRONMENT=.venv "$UV" sync --locked --offline --dry-run --all-extras 2>&1)"; then
    fail "uv.lock cannot install the environment as it stands" "$(echo "$out" | tail -n 6)"
  fi
fi

if ! grep -Eq '^uv==[0-9.]+ --hash=sha256:[0-9a-f]{64}$' hack/uv-requirements.txt; then
  fail "hack/uv-requirements.txt must pin uv by version and sha256"
fi

if [[ $failed -ne 0 ]]; then
  exit 1
fi
echo "verify-pins: every Go tool and the Python environment resolve from the committed pins only" >&2
