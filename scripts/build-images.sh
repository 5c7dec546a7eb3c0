#!/usr/bin/env bash
# Builds the sandbox images: the base (images/base, made with debootstrap, no registry needed),
# the static rce-shim, then one image per language from topology.yaml (default: all of them).
#
#   scripts/build-images.sh [--force] [--verbose] [LANG...]
#
# Each language image is built from the Dockerfile in the language's `build:` folder with
# --build-arg BASE=rce-base:bookworm and tagged with the image ref topology.yaml gives it.
# A language whose image is up to date is skipped: the image carries a label rce.build-hash, a
# hash of (its Dockerfile folder, the shim binary, the base image ID, this script's recipe
# version); the build runs only when that differs.
#
# Env: RCE_BASE_IMAGE (default rce-base:bookworm), RCE_REBUILD_BASE=1 (rebuild the base too),
#      RCE_BUILD_LOG_DIR (default /tmp/rce-build-images: one log per build).
# Needs a running Docker daemon (scripts/ensure-services.sh starts it).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Bump when the way images are built changes in a way the hash inputs do not show.
recipe=1
base_image=${RCE_BASE_IMAGE:-rce-base:bookworm}
log_dir=${RCE_BUILD_LOG_DIR:-/tmp/rce-build-images}
target=x86_64-unknown-linux-gnu
shim_target_dir=target/shim
shim_bin=$shim_target_dir/$target/release/rce-shim

# The classic builder: no buildx/BuildKit needed (Debian's docker.io 20.10 has none by default).
export DOCKER_BUILDKIT=0

force=0
verbose=0
langs=()
while [ $# -gt 0 ]; do
    case "$1" in
        -f | --force) force=1 ;;
        -v | --verbose) verbose=1 ;;
        -h | --help)
            sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        -*)
            echo "build-images.sh: unknown option $1 (see --help)" >&2
            exit 2
            ;;
        *) langs+=("$1") ;;
    esac
    shift
done

die() {
    echo "build-images.sh: $*" >&2
    exit 1
}

if ! docker info >/dev/null 2>&1; then
    die "the Docker daemon does not answer (docker info); start it with scripts/ensure-services.sh"
fi
mkdir -p "$log_dir"

# One build at a time on this machine: concurrent runs would race on the same tags and logs.
exec 9>"$log_dir/.lock"
if ! flock -n 9; then
    echo "build-images.sh: another build is running; waiting for it ..." >&2
    flock 9
fi

# --- the shim (static) and rce-topology -------------------------------------------------------
# Both in target/shim, so this script never waits on the lock of the workspace's main target/.
start=$(date +%s)
if ! RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR=$shim_target_dir \
    cargo build --release -p rce-shim --target $target >"$log_dir/shim.log" 2>&1; then
    tail -n 40 "$log_dir/shim.log" >&2
    die "building rce-shim failed (full log: $log_dir/shim.log)"
fi
[ -x "$shim_bin" ] || die "rce-shim was not built at $shim_bin"
if ! CARGO_TARGET_DIR=$shim_target_dir cargo build -q -p rce-protocol --bin rce-topology \
    >"$log_dir/topology.log" 2>&1; then
    tail -n 40 "$log_dir/topology.log" >&2
    die "building rce-topology failed (full log: $log_dir/topology.log)"
fi
topology=$("$shim_target_dir/debug/rce-topology" images) || die "rce-topology images failed"
echo "shim: ready ($(($(date +%s) - start))s)"

declare -A ref_of dir_of
all=()
while read -r id ref dir; do
    [ -n "$id" ] || continue
    ref_of[$id]=$ref
    dir_of[$id]=$dir
    all+=("$id")
done <<<"$topology"
[ ${#all[@]} -gt 0 ] || die "topology.yaml lists no language"
if [ ${#langs[@]} -eq 0 ]; then
    langs=("${all[@]}")
fi
for id in "${langs[@]}"; do
    [ -n "${ref_of[$id]:-}" ] || die "unknown language '$id' (topology.yaml has: ${all[*]})"
    [ -f "${dir_of[$id]}/Dockerfile" ] || die "$id: no Dockerfile in ${dir_of[$id]}"
done

# --- the base ---------------------------------------------------------------------------------
RCE_BASE_IMAGE=$base_image "$root/images/base/build-base.sh"
base_id=$(docker image inspect -f '{{.Id}}' "$base_image") || die "base image $base_image is missing"

# --- the languages ----------------------------------------------------------------------------
shim_sum=$(sha256sum "$shim_bin" | cut -d' ' -f1)

# Hash of a folder's files: relative paths, modes and contents, in a stable order.
dir_hash() {
    (
        cd "$1"
        find . -type f -print0 | LC_ALL=C sort -z |
            while IFS= read -r -d '' f; do
                printf '%s %s %s\n' "$(stat -c %a "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)" "$f"
            done
    ) | sha256sum | cut -d' ' -f1
}

ctx=$(mktemp -d /tmp/rce-build-ctx.XXXXXX)
trap 'rm -rf "$ctx"' EXIT

failed=()
for id in "${langs[@]}"; do
    ref=${ref_of[$id]}
    dir=${dir_of[$id]}
    hash=$(printf 'recipe=%s\ndir=%s\nshim=%s\nbase=%s\n' \
        "$recipe" "$(dir_hash "$dir")" "$shim_sum" "$base_id" | sha256sum | cut -c1-32)
    current=$(docker image inspect -f '{{ index .Config.Labels "rce.build-hash" }}' "$ref" 2>/dev/null || true)
    if [ "$force" = 0 ] && [ "$current" = "$hash" ]; then
        echo "$id: up to date ($ref)"
        continue
    fi
    old_id=$(docker image inspect -f '{{.Id}}' "$ref" 2>/dev/null || true)

    # A small build context: the Dockerfile folder and the shim (debug info stripped: the
    # symbol table stays for backtraces, the image does not carry ~4 MB of DWARF).
    rm -rf "${ctx:?}"/*
    cp -a "$dir/." "$ctx/"
    cp "$shim_bin" "$ctx/rce-shim"
    if command -v strip >/dev/null; then strip --strip-debug "$ctx/rce-shim"; fi

    log=$log_dir/$id.log
    t0=$(date +%s)
    # The builder's RUN containers use the default bridge network, which reaches the apt
    # mirror here (they get the host's resolv.conf, whose nameserver is not a loopback one).
    # RCE_BUILD_NETWORK=host is the way out on machines whose resolver is on 127.0.0.x (e.g.
    # systemd-resolved or dnsmasq), which bridge containers cannot reach.
    build=(docker build --rm --force-rm
        --build-arg "BASE=$base_image"
        --label "rce.build-hash=$hash"
        --label "rce.language=$id"
        -t "$ref")
    if [ -n "${RCE_BUILD_NETWORK:-}" ]; then build+=(--network "$RCE_BUILD_NETWORK"); fi
    build+=("$ctx")
    if [ "$verbose" = 1 ]; then
        "${build[@]}" 2>&1 | tee "$log" && ok=1 || ok=0
    else
        "${build[@]}" >"$log" 2>&1 && ok=1 || ok=0
    fi
    if [ "$ok" = 1 ]; then
        echo "$id: built in $(($(date +%s) - t0))s ($ref)"
        # Drop the image this build replaced, once nothing uses or names it any more.
        new_id=$(docker image inspect -f '{{.Id}}' "$ref")
        if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
            docker image rm "$old_id" >/dev/null 2>&1 || true
        fi
    else
        echo "$id: FAILED after $(($(date +%s) - t0))s; last lines of $log:" >&2
        tail -n 25 "$log" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /' >&2
        failed+=("$id")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    die "failed to build: ${failed[*]} (logs in $log_dir)"
fi
