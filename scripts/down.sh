#!/usr/bin/env bash
# `make down`: stops the api and runner that `make up` started (SIGTERM, then SIGKILL after the
# grace period). The runner removes its containers on the way out. Docker, RabbitMQ and Redis are
# left running: other things on the machine may use them. The local S3 server (moto) that
# scripts/ensure-s3.sh started for `make up` is stopped (its pid file says which); it keeps
# everything in memory, so files stored in it go with it.
set -euo pipefail
cd "$(dirname "$0")/.."
GRACE="${RCE_SHUTDOWN_GRACE_SECS:-30}"

stop() {
  local name=$1 pidfile=".run/$1.pid"
  if [ ! -f "$pidfile" ]; then echo "$name: not started by make up"; return; fi
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 $((GRACE + 5))); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "$name: killed (did not stop in time)"; else echo "$name: stopped"; fi
  else
    echo "$name: not running"
  fi
  rm -f "$pidfile"
}

stop api
stop runner

# moto, only if ensure-s3.sh started it (a moto someone else runs has no pid file of ours).
shopt -s nullglob
moto_pidfiles=(target/s3/moto-*.pid)
[ ${#moto_pidfiles[@]} -gt 0 ] || echo "s3 (moto): not started by make up"
for pidfile in "${moto_pidfiles[@]}"; do
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null && grep -q moto_server "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 10); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "s3 (moto): killed"; else echo "s3 (moto): stopped"; fi
  else
    echo "s3 (moto): not running"
  fi
  rm -f "$pidfile"
done
