#!/usr/bin/env bash
# Install the Debian packages the project needs, at the versions stated here (Debian 12 "bookworm").
#   build: compilers for the one Python dependency PyPI ships only as source (llama-cpp-python, built
#          once by `uv sync` and kept in uv's cache).
#   stack: etcd for the local stack's control plane.
#   images: the daemonless container tools `make images` and tests/image use (no Docker engine here;
#           crun does not work on this cgroup setup, so runc), and mmdebstrap for the Debian base.
#   browser: headless Chromium, in which tests open the demo's HTML report (charts drawn, no console errors).
# A missing package is installed at exactly its pinned version. An installed etcd of another version
# fails loudly (the stack is tested against this one); installed compilers of another version are
# accepted with a note (compilers build llama.cpp once; Debian's security updates move the image tools).
#
# Usage: hack/install-system-packages.sh build|stack|images|browser
# To bump: change a version below to what `apt-cache policy <package>` offers, and run `make test`.
set -euo pipefail

declare -A PINS=(
  [cmake]="3.25.1-1"
  [g++]="4:12.2.0-3"
  [etcd-server]="3.4.23-4+b4"
  [podman]="4.3.1+ds1-8+deb12u1+b3"
  [buildah]="1.28.2+ds1-3+deb12u1+b3"
  [skopeo]="1.9.3+ds1-1+b10"
  [runc]="1.1.5+ds1-1+deb12u1"
  [mmdebstrap]="1.3.5-7"
  [chromium]="156.0.8078.114-1~deb12u1"
)
case "${1:-}" in
  build) PACKAGES=(cmake g++); STRICT=0 ;;
  stack) PACKAGES=(etcd-server); STRICT=1 ;;
  images) PACKAGES=(podman buildah skopeo runc mmdebstrap); STRICT=0 ;;
  browser) PACKAGES=(chromium); STRICT=0 ;;
  *) echo "usage: $0 build|stack|images|browser" >&2; exit 2 ;;
esac

installed_version() { { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null || true; } | awk '/install ok installed/ { print $4 }'; }

need=()
for p in "${PACKAGES[@]}"; do
  have="$(installed_version "$p")"
  want="${PINS[$p]}"
  if [[ -z "$have" ]]; then
    need+=("$p=$want")
  elif [[ "$have" != "$want" ]]; then
    if [[ $STRICT == 1 ]]; then
      echo "install-system-packages: $p $have is installed, the project pins $want (hack/install-system-packages.sh)." >&2
      echo "  install the pinned one (apt-get install $p=$want) or bump the pin deliberately." >&2
      exit 1
    fi
    echo "install-system-packages: note: $p $have installed (pinned: $want); using it" >&2
  fi
done
[[ ${#need[@]} -eq 0 ]] && exit 0

command -v apt-get >/dev/null || { echo "install-system-packages: apt-get not found: install ${need[*]}" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "install-system-packages: needs root to install ${need[*]} (sudo $0 $1)" >&2; exit 1; }
echo "install-system-packages: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >&2; then
  echo "install-system-packages: apt could not install ${need[*]}; if the archive no longer carries a pinned" >&2
  echo "  version, bump it in hack/install-system-packages.sh to what \`apt-cache policy\` offers." >&2
  exit 1
fi
# etcd-server enables a system service; the stack runs its own instance with its own flags.
if [[ " ${need[*]} " == *" etcd-server="* ]] && command -v systemctl >/dev/null; then
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi
