#!/usr/bin/env bash
# Makes sure the services the fleet needs are installed and answering on this machine:
# Docker Engine (Debian's docker.io), RabbitMQ (>= 3.8: quorum queues), Redis, a local S3 server
# (moto, scripts/ensure-s3.sh: the S3 file store's tests), plus debootstrap for the base image
# (images/base) and python3-venv for the fuzz run (scripts/fuzz.sh) and moto.
# Idempotent: on a machine where all of them already run it only checks them (well under 2 s). Works without systemd (starts daemons directly / through
# /etc/init.d), and with it (systemctl). Meant for Debian/Ubuntu, as root (sudo otherwise).
#
# One line per service: "docker: running (already)" or "docker: started".
# Env: RCE_SERVICE_TIMEOUT (seconds to wait for each service, default 60),
#      RCE_AMQP_PORT (default 5672), RCE_DOCKERD_LOG (default /var/log/rce-dockerd.log).
set -euo pipefail

timeout_s=${RCE_SERVICE_TIMEOUT:-60}
amqp_port=${RCE_AMQP_PORT:-5672}
dockerd_log=${RCE_DOCKERD_LOG:-/var/log/rce-dockerd.log}

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
else
    command -v sudo >/dev/null || {
        echo "ensure-services.sh: not root and no sudo" >&2
        exit 1
    }
    SUDO=(sudo)
fi
as_root() { "${SUDO[@]}" "$@"; }

die() {
    echo "ensure-services.sh: $*" >&2
    exit 1
}

have_systemd() { [ -d /run/systemd/system ]; }

# Is a process with this exact name running? (/proc directly: procps may not be installed.)
running() {
    local c
    for c in /proc/[0-9]*/comm; do
        [ "$(cat "$c" 2>/dev/null)" = "$1" ] && return 0
    done
    return 1
}

# --- install what is missing (one apt-get update, one apt-get install) -----------------------
missing=()
{ command -v dockerd >/dev/null && command -v docker >/dev/null; } || missing+=(docker.io)
{ command -v rabbitmq-server >/dev/null || [ -x /usr/sbin/rabbitmq-server ]; } || missing+=(rabbitmq-server)
{ command -v redis-server >/dev/null && command -v redis-cli >/dev/null; } || missing+=(redis-server)
{ command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ]; } || missing+=(debootstrap)
command -v curl >/dev/null || missing+=(curl)
# scripts/fuzz.sh installs schemathesis into a virtualenv: python3 with its venv module (and pip).
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    echo "installing: ${missing[*]} ..."
    # Package postinsts must not fail for want of an init system: they may try to start the
    # daemons; we start them ourselves below.
    apt_log=$(mktemp /tmp/rce-ensure-apt.XXXXXX.log)
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update >"$apt_log" 2>&1 ||
        { tail -n 20 "$apt_log" >&2; die "apt-get update failed (log: $apt_log)"; }
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "${missing[@]}" debian-archive-keyring >>"$apt_log" 2>&1 ||
        { tail -n 20 "$apt_log" >&2; die "apt-get install ${missing[*]} failed (log: $apt_log)"; }
    rm -f "$apt_log"
fi
export PATH=$PATH:/usr/sbin:/sbin

# RabbitMQ must support quorum queues (3.8+).
if command -v dpkg-query >/dev/null &&
    rmq_version=$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null) && [ -n "$rmq_version" ]; then
    dpkg --compare-versions "$rmq_version" ge 3.8 ||
        die "rabbitmq-server $rmq_version is too old: quorum queues need RabbitMQ >= 3.8"
fi

# Waits until "$@" succeeds, at most $timeout_s seconds.
wait_for() {
    local deadline=$((SECONDS + timeout_s))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.5
    done
}

# --- Docker -----------------------------------------------------------------------------------
docker_ok() { as_root docker info >/dev/null 2>&1; }
if docker_ok; then
    echo "docker: running (already)"
else
    if have_systemd; then
        as_root systemctl start docker || true
        where="journalctl -u docker"
    else
        where=$dockerd_log
        # /etc/init.d/docker fails in some containers/VMs (its `ulimit -n 1048576`), so dockerd
        # is started directly, detached from this shell's session so it outlives the caller.
        if ! running dockerd; then
            as_root sh -c "setsid nohup dockerd >>'$dockerd_log' 2>&1 </dev/null &"
        fi
    fi
    wait_for docker_ok || die "docker did not answer \`docker info\` within ${timeout_s}s; see $where"
    echo "docker: started"
fi

# The runner meters each job in cgroups below a directory it makes for each container, which needs
# the engine's `cgroupfs` cgroup driver (docs/operations.md). Docker picks `systemd` on systemd
# hosts with cgroup v2: switch it, but only where no daemon.json of the operator's exists.
driver=$(as_root docker info --format '{{.CgroupDriver}}' 2>/dev/null || true)
if [ "$driver" = systemd ]; then
    if [ -e /etc/docker/daemon.json ]; then
        die "docker uses the systemd cgroup driver; add \"exec-opts\": [\"native.cgroupdriver=cgroupfs\"] to /etc/docker/daemon.json and restart docker"
    fi
    echo "docker: switching to the cgroupfs cgroup driver (/etc/docker/daemon.json)"
    as_root mkdir -p /etc/docker
    echo '{"exec-opts": ["native.cgroupdriver=cgroupfs"]}' | as_root tee /etc/docker/daemon.json >/dev/null
    if have_systemd; then
        as_root systemctl restart docker
    else
        as_root pkill -x dockerd || true
        sleep 2
        as_root sh -c "setsid nohup dockerd >>'$dockerd_log' 2>&1 </dev/null &"
    fi
    wait_for docker_ok || die "docker did not come back after the cgroup driver change"
fi

# --- Redis ------------------------------------------------------------------------------------
redis_ok() { [ "$(redis-cli ping 2>/dev/null)" = PONG ]; }
if redis_ok; then
    echo "redis: running (already)"
else
    if have_systemd; then
        as_root systemctl start redis-server || true
    elif [ -x /etc/init.d/redis-server ]; then
        as_root service redis-server start >/dev/null 2>&1 || true
    fi
    # No init script at all (or it failed): run it daemonized with the packaged config.
    if ! wait_for redis_ok && ! running redis-server; then
        as_root sh -c 'cd / && redis-server /etc/redis/redis.conf --daemonize yes' >/dev/null 2>&1 || true
        wait_for redis_ok || true
    fi
    redis_ok || die "redis did not answer \`redis-cli ping\` within ${timeout_s}s; see /var/log/redis/redis-server.log"
    echo "redis: started"
fi

# --- RabbitMQ ---------------------------------------------------------------------------------
# Ready = the node answers a ping and its AMQP listener accepts connections.
amqp_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$amqp_port" 2>/dev/null; }
rabbit_ok() { amqp_open && as_root rabbitmq-diagnostics -q ping >/dev/null 2>&1; }
if rabbit_ok; then
    echo "rabbitmq: running (already)"
else
    if have_systemd; then
        as_root systemctl start rabbitmq-server || true
    elif [ -x /etc/init.d/rabbitmq-server ]; then
        as_root service rabbitmq-server start >/dev/null 2>&1 || true
    else
        as_root rabbitmq-server -detached >/dev/null 2>&1 || true
    fi
    wait_for rabbit_ok ||
        die "rabbitmq did not answer (rabbitmq-diagnostics ping, AMQP port $amqp_port) within ${timeout_s}s;" \
            "see /var/log/rabbitmq/ (startup_log, startup_err, rabbit@${HOSTNAME%%.*}.log)"
    echo "rabbitmq: started"
fi

# --- S3 (moto) --------------------------------------------------------------------------------
bash "$(dirname "$0")/ensure-s3.sh" || die "the local S3 server (moto) did not start; see target/s3/"

echo "debootstrap: installed"
