#!/usr/bin/env bash
# `make up`: installs and starts Docker Engine, RabbitMQ and Redis when missing or stopped, builds
# the images that are missing or stale, starts the api and the runner in the background (logs and
# pid files under .run/), waits until the api is ready, and prints where to point curl.
# Run again, it starts only what is not running.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/require-rust.sh
mkdir -p .run

API_ADDR="${RCE_API_ADDR:-127.0.0.1:8080}"
METRICS_ADDR="${RCE_RUNNER_METRICS_ADDR:-127.0.0.1:9090}"

bash scripts/ensure-services.sh
bash scripts/build-images.sh
echo "building api and runner (release)..."
cargo build --release --quiet -p rce-api -p rce-runner

running() { [ -f ".run/$1.pid" ] && kill -0 "$(cat ".run/$1.pid")" 2>/dev/null; }

start() {
  local name=$1 bin=$2
  if running "$name"; then
    echo "$name: running (pid $(cat ".run/$name.pid"))"
    return
  fi
  RCE_API_ADDR="$API_ADDR" RCE_RUNNER_METRICS_ADDR="$METRICS_ADDR" RCE_TOPOLOGY="$PWD/topology.yaml" \
    nohup "target/release/$bin" >>".run/$name.log" 2>&1 &
  echo $! >".run/$name.pid"
  echo "$name: started (pid $!, log .run/$name.log)"
}

source scripts/wait-http.sh

start runner rce-runner
start api rce-api
wait_http runner "http://$METRICS_ADDR/healthz" .run/runner.log 180
wait_http api "http://$API_ADDR/readyz" .run/api.log 60

cat <<MSG

rce is up.
  API:      http://$API_ADDR   (OpenAPI: http://$API_ADDR/openapi.json)
  metrics:  http://$API_ADDR/metrics, http://$METRICS_ADDR/metrics
  Judge0:   http://$API_ADDR   (Judge0 CE 1.13.1 clients: use this as their base URL)
  Piston:   http://$API_ADDR/api/v2   (docs/compatibility.md)
  webhooks: $( [ -n "${RCE_WEBHOOK_SECRET:-}" ] && echo "on (RCE_WEBHOOK_SECRET is set)" || echo "off until RCE_WEBHOOK_SECRET is set (make down; RCE_WEBHOOK_SECRET=... make up)")

Try it:
  curl -s 'http://$API_ADDR/v1/jobs?wait=true' -H 'content-type: application/json' \\
       -d '{"language":"python","source":"print(input()[::-1])","stdin":"hello"}'

Stop it with: make down
MSG
