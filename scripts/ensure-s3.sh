#!/usr/bin/env bash
# Makes sure a local S3-compatible server answers on 127.0.0.1:$RCE_MOTO_PORT: moto's server mode,
# pinned below, in a virtualenv of its own at target/s3-venv (installed on first use). The
# integration tests of the S3 file store (tests/it/files_s3.rs) talk to it, and so does an api run
# with RCE_FILE_STORE=s3 RCE_S3_ENDPOINT=http://127.0.0.1:9000 (docs/api.md, "Files").
#
# moto keeps everything in memory and starts with no bucket: the tests create theirs, and this
# script creates RCE_S3_BUCKET (default rce-files) for the api. It listens on 127.0.0.1 only.
# Run by scripts/ensure-services.sh; idempotent: an answering moto is only checked. The server it
# starts runs detached, pid in target/s3/moto-<port>.pid, log beside it; `make down` stops it.
#
# One line: "s3 (moto): running (already)" or "s3 (moto): started".
# Env: RCE_MOTO_PORT (default 9000), RCE_S3_BUCKET (default rce-files),
#      RCE_SERVICE_TIMEOUT (seconds to wait for it, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5
port=${RCE_MOTO_PORT:-9000}
bucket=${RCE_S3_BUCKET:-rce-files}
timeout_s=${RCE_SERVICE_TIMEOUT:-60}
venv=target/s3-venv
run_dir=target/s3
pidfile=$run_dir/moto-$port.pid
log=$run_dir/moto-$port.log
url=http://127.0.0.1:$port

die() {
    echo "ensure-s3.sh: $*" >&2
    exit 1
}

command -v curl >/dev/null || die "curl is missing (scripts/ensure-services.sh installs it)"
command -v python3 >/dev/null || die "python3 is missing (scripts/ensure-services.sh installs it)"

# moto's own dashboard answers only on a moto server, so a different program on the port is not
# mistaken for one (its data.json would also do, but it dumps every object, and can fail on them).
moto_ok() { curl -fsS -o /dev/null --max-time 2 "$url/moto-api/" 2>/dev/null; }

# A bucket PUT is idempotent for its owner (200, or 409 BucketAlreadyOwnedByYou on some versions).
make_bucket() {
    local code
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X PUT "$url/$bucket") ||
        die "creating bucket $bucket at $url failed"
    case $code in
    200 | 409) ;;
    *) die "creating bucket $bucket at $url answered HTTP $code; see $log" ;;
    esac
}

if moto_ok; then
    make_bucket
    echo "s3 (moto): running (already)"
    exit 0
fi

installed_version() {
    "$venv/bin/python" -c 'from importlib.metadata import version; print(version("moto"))' 2>/dev/null
}
if [ "$(installed_version)" != "$MOTO_VERSION" ] || [ ! -x "$venv/bin/moto_server" ]; then
    echo "s3 (moto): installing moto[server] $MOTO_VERSION into $venv ..."
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" ||
        die "installing moto[server]==$MOTO_VERSION failed"
fi

mkdir -p "$run_dir"
# Is the moto of our pid file alive? (Its command line is checked too: pids get reused.)
ours_alive() {
    local pid
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    kill -0 "$pid" 2>/dev/null && grep -q moto_server "/proc/$pid/cmdline" 2>/dev/null
}
start_moto() {
    if timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null; then
        die "something that is not moto listens on 127.0.0.1:$port; set RCE_MOTO_PORT to a free port"
    fi
    # Detached from this shell's session, so it outlives the caller (like the other services).
    setsid nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >>"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
}

# A live moto of ours that does not answer yet is starting (or hung): it gets the wait below
# rather than a second one on the same port. One that is stopping, or stopped, is started anew.
ours_alive || start_moto
deadline=$((SECONDS + timeout_s))
restarted=
until moto_ok; do
    if [ $SECONDS -ge $deadline ]; then
        tail -n 20 "$log" >&2 || true
        die "moto did not answer at $url within ${timeout_s}s; see $log"
    fi
    if ! ours_alive; then
        [ -z "$restarted" ] || { tail -n 20 "$log" >&2; die "moto exited; see $log"; }
        restarted=1
        start_moto
    fi
    sleep 0.5
done
make_bucket
echo "s3 (moto): started"
