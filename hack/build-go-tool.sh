#!/usr/bin/env bash
# Build the binaries of one Go tool the project provides (kubernetes, minio, prometheus, helm) from its
# committed, checksummed module under hack/tools/<tool>/ (go.mod + go.sum, `tool` directives). Nothing
# floats: the build runs with -mod=readonly, so Go refuses any module version or checksum that go.sum does
# not already hold. Idempotent: binaries are cached under
#   ${KUBETUNE_CACHE:-~/.cache/kubetune}/<tool>-<version>-<hash of go.mod+go.sum>/
# and only missing ones are built; any edit to the pins is a new cache key.
#
# Usage: hack/build-go-tool.sh <tool>      Prints the binary directory on its last stdout line.
# Progress goes to stderr, with a line every 30 s while a binary compiles.
set -euo pipefail

TOOL="${1:?usage: build-go-tool.sh <kubernetes|minio|prometheus|helm>}"
HERE="$(cd "$(dirname "$0")" && pwd)"
MODDIR="$HERE/tools/$TOOL"
CACHE="${KUBETUNE_CACHE:-$HOME/.cache/kubetune}"
[[ -f "$MODDIR/go.mod" && -f "$MODDIR/go.sum" ]] || { echo "build-go-tool: no $MODDIR/go.mod + go.sum" >&2; exit 1; }

# Per tool: the module whose version names the cache, the binaries and their packages.
case "$TOOL" in
  kubernetes)
    MAIN=k8s.io/kubernetes
    BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
    pkg() { echo "k8s.io/kubernetes/cmd/$1"; }
    ;;
  minio)
    MAIN=github.com/minio/minio
    BINARIES=(minio)
    pkg() { echo "github.com/minio/minio"; }
    ;;
  prometheus)
    MAIN=github.com/prometheus/prometheus
    BINARIES=(prometheus promtool)
    pkg() { echo "github.com/prometheus/prometheus/cmd/$1"; }
    ;;
  helm)
    MAIN=helm.sh/helm/v3
    BINARIES=(helm)
    pkg() { echo "helm.sh/helm/v3/cmd/helm"; }
    ;;
  *) echo "build-go-tool: unknown tool '$TOOL'" >&2; exit 2 ;;
esac

# The version is read from go.mod itself (no Go call needed for a cache hit).
VERSION="$(awk -v m="$MAIN" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$MODDIR/go.mod")"
[[ -n "$VERSION" ]] || { echo "build-go-tool: $MAIN is not required in $MODDIR/go.mod" >&2; exit 1; }
PIN_HASH="$(cat "$MODDIR/go.mod" "$MODDIR/go.sum" | sha256sum | cut -c1-10)"
OUT="$CACHE/$TOOL-$VERSION-$PIN_HASH"

# Cold-build times measured on the 2-core development machine with an empty Go build cache, under load
# (docs/local-stack.md), printed so that nobody wonders whether a silent compiler hangs.
expected() {
  case "$1" in
    kube-apiserver) echo "~6 min" ;; kube-controller-manager) echo "~2 min" ;; kubectl) echo "~1 min" ;;
    prometheus) echo "~13 min" ;; minio) echo "~1-14 min" ;; *) echo "~1 min" ;;
  esac
}

missing() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$OUT/$b" ]] || echo "$b"; done
}
if [[ -z "$(missing)" ]]; then
  echo "$OUT"
  exit 0
fi

# One build at a time per output directory (two pytest sessions may ask at once); whoever waited finds
# the binaries built.
mkdir -p "$OUT"
exec 9>"$OUT/.build.lock"
flock 9
todo=($(missing))
if [[ ${#todo[@]} -eq 0 ]]; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { echo "build-go-tool: 'go' not found on PATH (Go >= 1.26 is required to build $TOOL)" >&2; exit 1; }
# Never let a toolchain line trigger a download, never resolve anything go.sum does not pin.
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false"
cd "$MODDIR"
echo "build-go-tool: $TOOL $VERSION: ${#todo[@]} binaries to build (${todo[*]}), cached afterwards" >&2

dep_version() { go list -m -f '{{.Version}}' "$1"; }
ldflags="-s -w"
case "$TOOL" in
  kubernetes)
    # Stamped like upstream's hack/lib/version.sh, so `kubectl version` and discovery report the release.
    minor="${VERSION#v1.}"; minor="${minor%%.*}"
    ldflags+=" -X k8s.io/component-base/version.gitVersion=$VERSION -X k8s.io/component-base/version.gitMajor=1"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$VERSION"
    ;;
  prometheus)
    # Module v0.315.0 is Prometheus 3.15.0: what /api/v1/status/buildinfo and `promtool --version` report.
    number="${VERSION#v0.}"
    ldflags+=" -X github.com/prometheus/common/version.Version=${number:0:1}.${number:1}"
    ;;
  helm)
    # Like upstream's Makefile: the release in `helm version`, and the Kubernetes version `helm template`
    # and `helm lint` assume without a cluster (1.<client-go minor>), else they assume v1.20.
    k8s_minor="$(dep_version k8s.io/client-go | sed -n 's/^v0\.\([0-9]*\)\..*$/\1/p')"
    ldflags+=" -X helm.sh/helm/v3/internal/version.version=$VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for p in pkg/lint/rules pkg/chartutil; do
      ldflags+=" -X helm.sh/helm/v3/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/$p.k8sVersionMinor=$k8s_minor"
    done
    ;;
esac

for b in "${todo[@]}"; do
  start=$(date +%s)
  echo "build-go-tool: building $b ($TOOL $VERSION, once; cold on 2 cores $(expected "$b")) into $OUT" >&2
  ( while sleep 30; do echo "build-go-tool:   ... still compiling $b ($(( $(date +%s) - start )) s)" >&2; done ) &
  ticker=$!
  # Build to a temporary name and rename, so an interrupted build never leaves a binary the check accepts.
  if ! CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$OUT/.$b.tmp" "$(pkg "$b")"; then
    kill "$ticker" 2>/dev/null || true
    echo "build-go-tool: building $b failed" >&2
    exit 1
  fi
  kill "$ticker" 2>/dev/null || true
  mv "$OUT/.$b.tmp" "$OUT/$b"
  echo "build-go-tool: built $b in $(( $(date +%s) - start )) s" >&2
done
echo "$OUT"
