#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager and kube-scheduler of one pinned Kubernetes release from
# the Go module proxy (no git clone, no Docker). Idempotent: binaries are cached by version under
# ${KUBETUNE_CACHE:-~/.cache/kubetune}/k8s-<version>/ and only missing ones are built.
#
# Usage: hack/build-k8s.sh [version]        (default: KUBETUNE_K8S_VERSION or the pinned one below)
# Prints the binary directory on its last line.
set -euo pipefail

# Pinned: newest release the Go module proxy served when the stack was written (`go list -m -versions
# k8s.io/kubernetes`). Bump deliberately; the cache key is the version.
VERSION="${1:-${KUBETUNE_K8S_VERSION:-v1.36.3}}"
CACHE="${KUBETUNE_CACHE:-$HOME/.cache/kubetune}"
OUT="$CACHE/k8s-$VERSION"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

missing=()
for b in "${BINARIES[@]}"; do
  [[ -x "$OUT/$b" ]] || missing+=("$b")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "$OUT"
  exit 0
fi

# One build at a time per output directory (two pytest sessions may ask at once); whoever waited
# finds the binary built and stops here.
mkdir -p "$OUT"
exec 9>"$OUT/.build.lock"
flock 9
missing=()
for b in "${BINARIES[@]}"; do
  [[ -x "$OUT/$b" ]] || missing+=("$b")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { echo "build-k8s: 'go' not found on PATH (Go >= 1.25 is required)" >&2; exit 1; }
# The Go toolchain on this machine is new enough; never let go.mod's toolchain line trigger a download.
export GOTOOLCHAIN=local
# k8s.io/kubernetes is a module whose staging repos (k8s.io/api, ...) are `replace`d by local paths in
# its own go.mod; a consumer module must redirect each of them to the published v0.X.Y tag instead.
STAGING_VERSION="v0.${VERSION#v1.}"
WORK="$CACHE/build/k8s-$VERSION"
mkdir -p "$WORK" "$OUT"
cd "$WORK"

echo "build-k8s: fetching k8s.io/kubernetes@$VERSION go.mod" >&2
upstream_gomod="$(go mod download -json "k8s.io/kubernetes@$VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
[[ -f "$upstream_gomod" ]] || { echo "build-k8s: could not download go.mod of k8s.io/kubernetes@$VERSION" >&2; exit 1; }
go_directive="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$upstream_gomod" | head -1)"

{
  echo "module kubetune.local/k8sbuild"
  echo
  echo "go ${go_directive:-1.25}"
  echo
  echo "require k8s.io/kubernetes $VERSION"
  echo
  echo "replace ("
  # Upstream lines look like: `k8s.io/api => ./staging/src/k8s.io/api`
  sed -n 's#^\s*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*$#\t\1 => \1 '"$STAGING_VERSION"'#p' "$upstream_gomod"
  echo ")"
} >go.mod
printf 'package k8sbuild\n' >doc.go

pkgs=()
for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
echo "build-k8s: resolving dependencies" >&2
go get "${pkgs[@]}"

# Version stamping like upstream's hack/lib/version.sh, so `kubectl version` and the discovery API
# report the real release instead of v0.0.0-master.
minor="${VERSION#v1.}"
minor="${minor%%.*}"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$VERSION -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$VERSION"

for b in "${missing[@]}"; do
  start=$(date +%s)
  echo "build-k8s: building $b $VERSION" >&2
  # Build to a temporary name and rename, so an interrupted build never leaves a half-written binary
  # that the cache check above would accept.
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$OUT/.$b.tmp" "k8s.io/kubernetes/cmd/$b"
  mv "$OUT/.$b.tmp" "$OUT/$b"
  echo "build-k8s: built $b in $(($(date +%s) - start)) s" >&2
done
echo "$OUT"
