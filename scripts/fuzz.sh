#!/usr/bin/env bash
# `make fuzz` (and a step of `make test`): a schema-driven fuzz run of the api against its own
# OpenAPI document (api/openapi.json). Schemathesis generates requests from the document, valid
# and invalid ones, and the run fails on any 5xx and on any response whose status code, content
# type, headers or body the document does not declare for that operation.
#
# The api and a python-only runner run here as processes of their own (the debug binaries of
# `cargo build -p rce-api -p rce-runner`), on a world of their own so nothing else on the machine
# is disturbed: RabbitMQ vhost `rce-fuzz` (recreated empty), Redis database 13 (flushed), runner id
# `fuzz` (container label rce.runner=fuzz) and uid block index 4 (`make up` 0, integration tests 1,
# bench 2, fault tests 3). Every request goes to 127.0.0.1. Generated jobs run for real in the
# sandbox; tests/fuzz/fuzz_hooks.py lowers their time limits so each request stays short.
#
# Schemathesis (pinned below) is installed into a virtualenv at target/fuzz-venv on first use.
# Env: RCE_FUZZ_MAX_TIME (seconds of generation, default 150), RCE_FUZZ_MAX_EXAMPLES (per
#      operation and phase, default 100), RCE_FUZZ_SEED (replay a run: its seed is printed),
#      RCE_FUZZ_LOG_DIR (default target/fuzz: api and runner logs, the JUnit report),
#      RCE_FUZZ_SCHEMA (default api/openapi.json: the document the api is held to).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin
cd "$(dirname "$0")/.."
source scripts/require-rust.sh

SCHEMATHESIS_VERSION=4.32.5
VHOST=rce-fuzz
REDIS_DB=13
RUNNER_ID=fuzz
max_time=${RCE_FUZZ_MAX_TIME:-150}
max_examples=${RCE_FUZZ_MAX_EXAMPLES:-100}
seed=${RCE_FUZZ_SEED:-$(( (RANDOM << 15) | RANDOM ))}
log_dir=${RCE_FUZZ_LOG_DIR:-target/fuzz}
venv=target/fuzz-venv
schema=${RCE_FUZZ_SCHEMA:-api/openapi.json}

# Standalone (`make fuzz`) it needs what `make test` has already done before it.
if [ "${RCE_FUZZ_IN_TEST:-}" != 1 ]; then
  bash scripts/ensure-services.sh
  bash scripts/build-images.sh python
  cargo build --quiet -p rce-api -p rce-runner
fi

# --- schemathesis, pinned, in a virtualenv of its own -------------------------------------------
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  echo "fuzz: installing schemathesis $SCHEMATHESIS_VERSION into $venv ..."
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# --- the api and runner under test ----------------------------------------------------------------
rm -rf "$log_dir"
mkdir -p "$log_dir"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
api_addr=127.0.0.1:$(free_port)
metrics_addr=127.0.0.1:$(free_port)
pids=()

cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  ids=$(docker ps -aq --filter label=rce.managed=true --filter label=rce.runner=$RUNNER_ID)
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
  for dir in /sys/fs/cgroup/rce/$RUNNER_ID /sys/fs/cgroup/*/rce/$RUNNER_ID; do
    [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
  return 0
}
trap cleanup EXIT
cleanup

rabbitmqctl -q add_vhost "$VHOST" >/dev/null
rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
redis-cli -n "$REDIS_DB" flushdb >/dev/null

export RCE_AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$VHOST"
export RCE_REDIS_URL="redis://127.0.0.1:6379/$REDIS_DB"
export RCE_TOPOLOGY="$PWD/topology.yaml"
export RUST_LOG=${RUST_LOG:-info}

RCE_RUNNER_ID=$RUNNER_ID RCE_RUNNER_INDEX=4 RCE_RUNNER_LANGUAGES=python \
  RCE_RUNNER_METRICS_ADDR=$metrics_addr target/debug/rce-runner >"$log_dir/runner.log" 2>&1 </dev/null &
pids+=($!)
# A short wait margin: jobs of languages no runner here serves stay queued, and `?wait=true` on
# them lasts their wall limit plus the compile limit plus this margin.
RCE_API_ADDR=$api_addr RCE_WAIT_MARGIN_MS=1000 RCE_SSE_HEARTBEAT_SECS=1 \
  target/debug/rce-api >"$log_dir/api.log" 2>&1 </dev/null &
pids+=($!)

source scripts/wait-http.sh
wait_http runner "http://$metrics_addr/healthz" "$log_dir/runner.log" 180
wait_http api "http://$api_addr/readyz" "$log_dir/api.log" 60

# --- the run --------------------------------------------------------------------------------------
# Checks: no 5xx; the status code, content type, headers and body of every response are declared
# for its operation; and data the document calls invalid is refused with a 4xx.
# Stateful testing needs OpenAPI links, which the document does not declare. One worker: with
# several, CPython 3.11 (Debian bookworm's) fails in Hypothesis' ast.parse calls from threads
# ("AST constructor recursion depth mismatch").
echo "fuzz: schemathesis $SCHEMATHESIS_VERSION against http://$api_addr, seed $seed, ${max_time}s, at most $max_examples examples per operation"
status=0
SCHEMATHESIS_HOOKS=fuzz_hooks PYTHONPATH=$PWD/tests/fuzz "$venv/bin/schemathesis" run "$schema" \
  --url "http://$api_addr" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
  --phases examples,coverage,fuzzing \
  --max-time "$max_time" \
  --max-examples "$max_examples" \
  --request-timeout 60 \
  --workers 1 \
  --seed "$seed" \
  --generation-database none \
  --no-color \
  --report junit --report-junit-path "$log_dir/junit.xml" || status=$?
if [ $status -ne 0 ]; then
  echo "fuzz: FAILED (replay with RCE_FUZZ_SEED=$seed; api and runner logs in $log_dir)" >&2
fi
exit $status
