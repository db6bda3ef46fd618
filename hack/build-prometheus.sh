#!/usr/bin/env bash
# Build the Prometheus server of one pinned release from the Go module proxy. Idempotent: the binary is
# cached by version under ${KUBETUNE_CACHE:-~/.cache/kubetune}/prometheus-<version>/prometheus.
#
# Why not Debian's `prometheus` package: Debian builds it without the Kubernetes service discovery
# (its 2.42 rejects `kubernetes_sd_configs`: "field kubernetes_sd_configs not found in type
# config.ScrapeConfig"), and discovering pods through the API server is the point of the local stack.
#
# Usage: hack/build-prometheus.sh [version]  (default: KUBETUNE_PROMETHEUS_VERSION or the pinned one)
# Prints the binary path on its last line.
set -euo pipefail

# Prometheus 3.x is published as module versions v0.3XX.Y (3.15.0 -> v0.315.0); newest when written.
VERSION="${1:-${KUBETUNE_PROMETHEUS_VERSION:-v0.315.0}}"
CACHE="${KUBETUNE_CACHE:-$HOME/.cache/kubetune}"
OUT="$CACHE/prometheus-$VERSION"

if [[ -x "$OUT/prometheus" ]]; then
  echo "$OUT/prometheus"
  exit 0
fi

# One build at a time per output directory (two pytest sessions may ask at once); whoever waited
# finds the binary built and stops here.
mkdir -p "$OUT"
exec 9>"$OUT/.build.lock"
flock 9
if [[ -x "$OUT/prometheus" ]]; then
  echo "$OUT/prometheus"
  exit 0
fi

command -v go >/dev/null || { echo "build-prometheus: 'go' not found on PATH (Go >= 1.26 is required)" >&2; exit 1; }
export GOTOOLCHAIN=local
# Its go.mod carries `replace` lines, which `go install pkg@version` refuses; so build inside a throwaway
# module that requires it and repeats those replace lines.
WORK="$CACHE/build/prometheus-$VERSION"
mkdir -p "$OUT" "$WORK"
cd "$WORK"
upstream_gomod="$(go mod download -json "github.com/prometheus/prometheus@$VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
[[ -f "$upstream_gomod" ]] || { echo "build-prometheus: could not download go.mod of $VERSION" >&2; exit 1; }
{
  echo "module kubetune.local/prometheusbuild"
  echo
  sed -n 's/^go \([0-9.]*\)$/go \1/p' "$upstream_gomod" | head -1
  echo
  echo "require github.com/prometheus/prometheus $VERSION"
  echo
  grep -E '^replace ' "$upstream_gomod" || true
} >go.mod
printf 'package prometheusbuild\n' >doc.go
start=$(date +%s)
echo "build-prometheus: resolving dependencies of github.com/prometheus/prometheus@$VERSION" >&2
go get github.com/prometheus/prometheus/cmd/prometheus
# Module v0.315.0 is Prometheus 3.15.0: the stamped version is what /api/v1/status/buildinfo reports.
number="${VERSION#v0.}"
release="${number:0:1}.${number:1}"
echo "build-prometheus: building prometheus $release" >&2
# Without the `builtinassets` tag the web UI is left out (it needs npm); the HTTP API is complete.
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release" \
  -o "$OUT/.prometheus.tmp" github.com/prometheus/prometheus/cmd/prometheus
mv "$OUT/.prometheus.tmp" "$OUT/prometheus"
echo "build-prometheus: built in $(($(date +%s) - start)) s" >&2
echo "$OUT/prometheus"
