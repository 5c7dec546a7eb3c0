#!/usr/bin/env bash
# Builds the base image rce-base:bookworm without any container registry:
#   debootstrap --variant=minbase bookworm <rootfs> <mirror>  (mirror: this machine's own apt sources)
#   trim the rootfs, then  tar -C <rootfs> -c . | docker import - rce-base:bookworm
#
# Skips when the image already exists, unless RCE_REBUILD_BASE=1.
# Env: RCE_BASE_IMAGE (default rce-base:bookworm), RCE_DEBIAN_MIRROR (override the mirror),
#      RCE_REBUILD_BASE=1 (force a rebuild).
# Needs root, debootstrap and a running Docker daemon (scripts/ensure-services.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
image=${RCE_BASE_IMAGE:-rce-base:bookworm}
suite=bookworm

if [ "${RCE_REBUILD_BASE:-0}" != 1 ] && docker image inspect "$image" >/dev/null 2>&1; then
    echo "base: up to date ($image)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "build-base.sh: debootstrap needs root; run as root (or via sudo)" >&2
    exit 1
fi
command -v debootstrap >/dev/null || {
    echo "build-base.sh: debootstrap is missing; run scripts/ensure-services.sh first" >&2
    exit 1
}

mirror=$("$here/debian-sources.sh" --mirror)
start=$(date +%s)

work=$(mktemp -d /var/tmp/rce-base.XXXXXX)
rootfs=$work/rootfs
log=$work/debootstrap.log
cleanup() {
    # debootstrap may leave /proc or /sys mounted in the rootfs when it fails half-way.
    local m
    for m in proc sys dev/pts dev; do
        if mountpoint -q "$rootfs/$m" 2>/dev/null; then umount -l "$rootfs/$m" || true; fi
    done
    rm -rf --one-file-system "$work"
}
trap cleanup EXIT

echo "base: debootstrap $suite (minbase) from this machine's apt mirror ..."
if ! debootstrap --variant=minbase --components=main "$suite" "$rootfs" "$mirror" >"$log" 2>&1; then
    echo "build-base.sh: debootstrap failed; last lines of its log:" >&2
    tail -n 30 "$log" >&2
    [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 30 "$rootfs/debootstrap/debootstrap.log" >&2
    exit 1
fi

# apt sources inside the image: the same Debian sources this machine uses (main, plus
# bookworm-updates and bookworm-security when the machine has them), so language builds get
# the current point-release and security versions.
{
    echo "# written by images/base/build-base.sh from the build machine's apt sources"
    if [ -n "${RCE_DEBIAN_MIRROR:-}" ]; then
        echo "deb ${RCE_DEBIAN_MIRROR%/} $suite main"
    else
        "$here/debian-sources.sh" | while read -r uri s; do echo "deb $uri $s main"; done
    fi
} >"$rootfs/etc/apt/sources.list"
rm -f "$rootfs"/etc/apt/sources.list.d/*

# Keep later layers lean too: dpkg skips docs, man pages and translations (copyright files
# stay), and apt drops downloaded .debs after each install, as Debian's official images do.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/rce-nodoc" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
path-exclude=/usr/share/linda/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
cat >"$rootfs/etc/apt/apt.conf.d/rce-lean" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
# No daemons are started by package postinsts inside image builds.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"

# Trim what the install left behind.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/var/tmp/* "$rootfs"/debootstrap
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/lintian
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
# The build machine's identity must not end up in the image.
: >"$rootfs/etc/hostname"
rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/machine-id" "$rootfs/var/lib/dbus/machine-id"
: >"$rootfs/etc/machine-id"

echo "base: importing $(du -sh --apparent-size "$rootfs" | cut -f1) rootfs as $image ..."
tar --numeric-owner --xattrs --acls -C "$rootfs" -c . |
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["bash"]' \
        --change "LABEL rce.base=debian-$suite-minbase" \
        --message "debootstrap --variant=minbase $suite" \
        - "$image" >/dev/null

echo "base: built $image in $(($(date +%s) - start))s"
