#!/usr/bin/env bash
# Build the MinIO S3 server of one pinned commit from the Go module proxy. Idempotent: the binary is
# cached by version under ${KUBETUNE_CACHE:-~/.cache/kubetune}/minio-<version>/minio.
#
# Usage: hack/build-minio.sh [version]      (default: KUBETUNE_MINIO_VERSION or the pinned one below)
# Prints the binary path on its last line.
set -euo pipefail

# MinIO tags releases as RELEASE.<date>, which are not semver, so the module proxy only serves them as
# pseudo-versions; this is the newest commit the proxy served when the stack was written
# (`go list -m -json github.com/minio/minio@latest`). It declares go 1.24 and builds with go1.26.
VERSION="${1:-${KUBETUNE_MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}}"
CACHE="${KUBETUNE_CACHE:-$HOME/.cache/kubetune}"
OUT="$CACHE/minio-$VERSION"

if [[ -x "$OUT/minio" ]]; then
  echo "$OUT/minio"
  exit 0
fi

# One build at a time per output directory (two pytest sessions may ask at once); whoever waited
# finds the binary built and stops here.
mkdir -p "$OUT"
exec 9>"$OUT/.build.lock"
flock 9
if [[ -x "$OUT/minio" ]]; then
  echo "$OUT/minio"
  exit 0
fi

command -v go >/dev/null || { echo "build-minio: 'go' not found on PATH (Go >= 1.24 is required)" >&2; exit 1; }
export GOTOOLCHAIN=local
mkdir -p "$OUT"
start=$(date +%s)
echo "build-minio: building github.com/minio/minio@$VERSION" >&2
# `go install pkg@version` builds outside any module, exactly the dependency versions MinIO pinned.
# Install into a temporary GOBIN and move, so an interrupted build never leaves a binary behind.
tmp="$(mktemp -d "$OUT/.gobin.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$VERSION"
mv "$tmp/minio" "$OUT/minio"
echo "build-minio: built in $(($(date +%s) - start)) s" >&2
echo "$OUT/minio"
