#!/usr/bin/env bash
# Vendor the Prometheus Operator CRDs that the chart's monitoring objects (ServiceMonitor, PodMonitor,
# PrometheusRule) are validated against, from the published Go module (its example/prometheus-operator-crd/
# files), never hand-written copies. Only package registries are reachable here, so the Go module proxy is
# the source. Re-run after bumping VERSION; the output is committed so tests need no network.
#
# Usage: hack/vendor-prometheus-operator-crds.sh [version]
set -euo pipefail

VERSION="${1:-v0.85.0}"
DEST="$(cd "$(dirname "$0")" && pwd)/vendor/prometheus-operator-crds"
KINDS=(servicemonitors podmonitors prometheusrules)

command -v go >/dev/null || { echo "vendor-prometheus-operator-crds: 'go' not found on PATH" >&2; exit 1; }
export GOTOOLCHAIN=local
# `go mod download -json` prints the unpacked module directory in the module cache as "Dir".
dir="$(cd "$(mktemp -d)" && go mod download -json "github.com/prometheus-operator/prometheus-operator@$VERSION" \
  | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')"
[[ -d "$dir/example/prometheus-operator-crd" ]] || { echo "no example/prometheus-operator-crd in $dir" >&2; exit 1; }
rm -rf "$DEST"
mkdir -p "$DEST"
for kind in "${KINDS[@]}"; do
  # install, not cp: files in the module cache are read-only.
  install -m 0644 "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$DEST/"
done
echo "$VERSION" >"$DEST/VERSION"
echo "vendored ${KINDS[*]} CRDs of prometheus-operator $VERSION into $DEST" >&2
