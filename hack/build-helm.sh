#!/usr/bin/env bash
# Build the Helm v3 CLI of one pinned release from the Go module proxy (no download of release tarballs:
# only package registries are reachable here). Idempotent: the binary is cached by version under
# ${KUBETUNE_CACHE:-~/.cache/kubetune}/helm-<version>/helm and only built when missing.
#
# Usage: hack/build-helm.sh [version]       (default: KUBETUNE_HELM_VERSION or the pinned one below)
# Prints the path of the helm binary on its last line.
set -euo pipefail

# Pinned: newest patch release of a settled Helm v3 minor (v3.22 had only .0) that builds with the local Go
# (1.26) when the chart was written (`go list -m -versions helm.sh/helm/v3`). The cache key is the version.
VERSION="${1:-${KUBETUNE_HELM_VERSION:-v3.21.4}}"
CACHE="${KUBETUNE_CACHE:-$HOME/.cache/kubetune}"
OUT="$CACHE/helm-$VERSION"

if [[ -x "$OUT/helm" ]]; then
  echo "$OUT/helm"
  exit 0
fi
command -v go >/dev/null || { echo "build-helm: 'go' not found on PATH (Go >= 1.24 is required)" >&2; exit 1; }
# Never let the module's toolchain line trigger a toolchain download.
export GOTOOLCHAIN=local
mkdir -p "$OUT"
start=$(date +%s)
echo "build-helm: building helm $VERSION" >&2
# Stamp like upstream's Makefile: the release in `helm version`, and the Kubernetes version that `helm
# template`/`helm lint` assume without a cluster (from its client-go v0.X.Y, i.e. 1.X), else they assume
# v1.20 and reject charts whose kubeVersion needs anything newer.
gomod="$(cd "$(mktemp -d)" && go mod download -json "helm.sh/helm/v3@$VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
k8s_minor="$(sed -n 's/^\s*k8s\.io\/client-go v0\.\([0-9]*\)\..*$/\1/p' "$gomod")"
[[ -n "$k8s_minor" ]] || { echo "build-helm: no k8s.io/client-go in $gomod" >&2; exit 1; }
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$k8s_minor"
done
tmp="$(mktemp -d "$CACHE/.helm-build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# `go install pkg@version` builds outside any module, exactly the module versions upstream releases with.
CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$VERSION"
# Move into place only when complete, so an interrupted build never leaves a binary the check accepts.
mv "$tmp/helm" "$OUT/helm"
echo "build-helm: built helm $VERSION in $(($(date +%s) - start)) s" >&2
echo "$OUT/helm"
