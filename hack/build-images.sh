#!/usr/bin/env bash
# Builds the images kubetune/<target>:<project version> from the Dockerfile (`make images`), or exports them
# (`make images-export`). docs/deploy.md ("Images") explains the choices.
#
#   hack/build-images.sh build [operator|trainer|evaluator ...]   default: all three
#   hack/build-images.sh export DIR [target ...]                   OCI archives via skopeo
#   hack/build-images.sh base                                      prints the base image, building it if needed
#   hack/build-images.sh tool                                      prints the container tool used
#
# The tool is the first that works here: docker (with a reachable engine), podman, buildah. podman and
# buildah build with `--isolation chroot` (no OCI runtime needed; crun fails on hybrid cgroup hosts).
# The base is BASE_IMAGE when set; else python:3.11-slim when present or pullable; else (air-gapped, no
# Docker Hub) a Debian 12 rootfs made from the machine's Debian package indexes with mmdebstrap, tagged by
# a key of those indexes and the package list, so it is built once and reused until `apt-get update`.
#
# Environment:
#   KUBETUNE_IMAGE_TOOL   docker|podman|buildah instead of the first found
#   BASE_IMAGE            base to build on, e.g. python:3.11-slim@sha256:<digest> (skips the choice above)
#   KUBETUNE_BASE         `debian`: always the Debian base (no pull attempt)
#   KUBETUNE_BUILD_CA     CA bundle for a TLS-intercepting proxy, passed as build secret `ca`
#                         (default: $PIP_CERT when that file exists); never stored in a layer
#   IMAGE_ARCHIVE_FORMAT  oci-archive (default) or docker-archive, for `export`
set -euo pipefail
cd "$(dirname "$0")/.."

readonly TARGETS_ALL=(operator trainer evaluator)
# Fully qualified: podman refuses short names it would have to ask about (no TTY in builds).
readonly DEFAULT_BASE=docker.io/library/python:3.11-slim
# The Debian base: Debian 12's python3 is 3.11 (the version the lock and the slim base have).
readonly DEBIAN_SUITES=(bookworm bookworm-updates bookworm-security)
readonly DEBIAN_PACKAGES=python3,python3-venv,ca-certificates
# Bump when the recipe below changes: part of the base's cache key.
readonly DEBIAN_RECIPE=3

log() { printf 'build-images: %s\n' "$*" >&2; }
die() {
    log "$*"
    exit 1
}

project_version() {
    python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])'
}

pick_tool() {
    if [[ -n ${KUBETUNE_IMAGE_TOOL:-} ]]; then
        echo "$KUBETUNE_IMAGE_TOOL"
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        echo docker
    elif command -v podman >/dev/null; then
        echo podman
    elif command -v buildah >/dev/null; then
        echo buildah
    else
        die "no container tool: install docker, podman or buildah (Debian: apt-get install buildah podman)"
    fi
}

image_exists() { # tool ref
    case $1 in
        docker) docker image inspect "$2" >/dev/null 2>&1 ;;
        podman) podman image exists "$2" ;;
        buildah) buildah inspect --type image "$2" >/dev/null 2>&1 ;;
    esac
}

# Image name as the tool stores it: podman and buildah put unqualified names under localhost/.
stored_ref() { # tool ref
    if [[ $1 == docker ]]; then echo "$2"; else echo "localhost/$2"; fi
}

# The machine's package indexes of DEBIAN_SUITES: they fix every package version of the Debian base.
debian_lists() {
    local suite repo
    for suite in "${DEBIAN_SUITES[@]}"; do
        repo=debian
        [[ $suite == *-security ]] && repo=debian-security
        compgen -G "/var/lib/apt/lists/deb.debian.org_${repo}_dists_${suite}_InRelease" ||
            die "no Debian package index for $suite under /var/lib/apt/lists: run apt-get update"
        compgen -G "/var/lib/apt/lists/deb.debian.org_${repo}_dists_${suite}_main_binary-amd64_Packages*" ||
            die "no Packages index for $suite: run apt-get update"
    done
}

debian_base_tag() {
    local key
    key=$({
        echo "$DEBIAN_RECIPE $DEBIAN_PACKAGES"
        debian_lists | grep InRelease | xargs cat
    } | sha256sum | cut -c1-16)
    echo "kubetune/base-debian12:$key"
}

build_debian_base() { # tool tag
    local tool=$1 tag=$2 tmp ctr lists
    command -v mmdebstrap >/dev/null || die "the Debian base needs mmdebstrap (apt-get install mmdebstrap)"
    lists=$(debian_lists | tr '\n' ' ')
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064  # expand now: tmp is local
    trap "rm -rf '$tmp'" EXIT
    log "making the Debian 12 base $tag from the machine's package indexes (mmdebstrap, ~1 min)"
    # --skip=update with the machine's own indexes: exactly the versions `apt-get install` here would pick,
    # each .deb checked against those indexes' hashes.
    # No recommended packages, man pages, docs (licence files stay) or translations: what the slim
    # Debian images leave out too. The merged-usr hook makes /bin etc. links up front, as bookworm wants,
    # so that the `usrmerge` package (and the 50 MB of perl it needs) is not installed to do it.
    mmdebstrap --quiet --variant=minbase --include="$DEBIAN_PACKAGES" --skip=update \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --setup-hook="mkdir -p \"\$1/var/lib/apt/lists\" && cp $lists \"\$1/var/lib/apt/lists/\"" \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*' \
        bookworm "$tmp/rootfs.tar" \
        "deb http://deb.debian.org/debian bookworm main" \
        "deb http://deb.debian.org/debian bookworm-updates main" \
        "deb http://deb.debian.org/debian-security bookworm-security main"
    if [[ $tool == docker ]]; then
        docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$tmp/rootfs.tar" "$tag" >/dev/null
        docker run --rm "$tag" python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'
    else
        ctr=$(buildah from scratch)
        buildah add --quiet "$ctr" "$tmp/rootfs.tar" / >/dev/null
        buildah config --env LANG=C.UTF-8 \
            --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd python3 "$ctr"
        buildah run --isolation chroot "$ctr" -- \
            python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'
        buildah commit --quiet --rm "$ctr" "$tag" >/dev/null
    fi
    rm -rf "$tmp"
    trap - EXIT
}

pick_base() { # tool
    local tool=$1 tag
    if [[ -n ${BASE_IMAGE:-} ]]; then
        echo "$BASE_IMAGE"
        return
    fi
    if [[ ${KUBETUNE_BASE:-} != debian ]]; then
        if image_exists "$tool" "$DEFAULT_BASE" ||
            timeout 120 "$tool" pull --quiet "$DEFAULT_BASE" >/dev/null 2>&1; then
            echo "$DEFAULT_BASE"
            return
        fi
        log "$DEFAULT_BASE cannot be pulled: using a Debian 12 base made from Debian packages"
    fi
    tag=$(debian_base_tag)
    image_exists "$tool" "$(stored_ref "$tool" "$tag")" || build_debian_base "$tool" "$tag"
    stored_ref "$tool" "$tag"
}

ca_bundle() {
    local ca=${KUBETUNE_BUILD_CA:-${PIP_CERT:-}}
    if [[ -n $ca && -s $ca ]]; then echo "$ca"; fi
}

build() { # targets...
    local tool base version ca target start args
    tool=$(pick_tool)
    base=$(pick_base "$tool")
    version=$(project_version)
    ca=$(ca_bundle)
    for target in "$@"; do
        args=(build --target "$target" --build-arg "BASE_IMAGE=$base" --tag "kubetune/$target:$version")
        [[ -n $ca ]] && args+=(--secret "id=ca,src=$ca")
        # Layers are cached: a rebuild with unchanged inputs takes seconds.
        [[ $tool != docker ]] && args+=(--layers --isolation chroot)
        [[ $tool == docker ]] && export DOCKER_BUILDKIT=1
        log "$tool: kubetune/$target:$version on $base"
        start=$SECONDS
        "$tool" "${args[@]}" --file Dockerfile . >&2
        log "kubetune/$target:$version built in $((SECONDS - start)) s"
    done
}

export_images() { # dir targets...
    local dir=$1 tool version format target source
    shift
    tool=$(pick_tool)
    version=$(project_version)
    format=${IMAGE_ARCHIVE_FORMAT:-oci-archive}
    command -v skopeo >/dev/null || die "export needs skopeo (apt-get install skopeo)"
    mkdir -p "$dir"
    for target in "$@"; do
        if [[ $tool == docker ]]; then
            source="docker-daemon:kubetune/$target:$version"
        else
            source="containers-storage:localhost/kubetune/$target:$version"
        fi
        rm -f "$dir/kubetune-$target-$version.tar"
        # The archive names the image kubetune/<target>:<version>, as the chart and the API defaults do.
        skopeo copy --quiet "$source" "$format:$dir/kubetune-$target-$version.tar:kubetune/$target:$version"
        log "wrote $dir/kubetune-$target-$version.tar ($format)"
    done
}

command=${1:-build}
shift || true
case $command in
    build)
        [[ $# -gt 0 ]] || set -- "${TARGETS_ALL[@]}"
        build "$@"
        ;;
    export)
        [[ $# -gt 0 ]] || die "usage: $0 export DIR [target ...]"
        dir=$1
        shift
        [[ $# -gt 0 ]] || set -- "${TARGETS_ALL[@]}"
        export_images "$dir" "$@"
        ;;
    base) pick_base "$(pick_tool)" ;;
    tool) pick_tool ;;
    *) die "unknown command $command (build, export, base, tool)" ;;
esac
