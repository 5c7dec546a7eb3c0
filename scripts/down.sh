#!/usr/bin/env bash
# `make down`: stops the api and runner that `make up` started (SIGTERM, then SIGKILL after the
# grace period). The runner removes its containers on the way out. Docker, RabbitMQ and Redis are
# left running: other things on the machine may use them.
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
