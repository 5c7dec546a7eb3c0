#!/usr/bin/env bash
# `make test`: the whole suite. Starts what the tests need (Docker Engine, RabbitMQ, Redis), builds
# the images that are missing or stale, then runs unit and integration tests. The integration
# tests run their own api and runner in-process, on a RabbitMQ vhost and Redis database of their
# own, so a `make up` service on the same machine is not disturbed. Then a schema-driven fuzz run
# holds the api to api/openapi.json (scripts/fuzz.sh, a few minutes). Last come the fault tests
# (tests/faults): they run api and runner as real processes and kill them, and restart RabbitMQ,
# Redis and Docker on purpose, one test at a time. A `make up` service rides those restarts out
# too (that is the point), but expect a few 503s from it meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/require-rust.sh

bash scripts/ensure-services.sh
bash scripts/build-images.sh

cleanup() {
  # The test runner's containers (label rce.runner=it) outlive the test process; remove them.
  for runner in it faults; do
    ids=$(docker ps -aq --filter label=rce.managed=true --filter label=rce.runner=$runner)
    [ -z "$ids" ] || docker rm -f $ids >/dev/null
    # ...and the cgroup directories the runner made for them (empty once the engine removed
    # the containers; rmdir refuses any that is not).
    for dir in /sys/fs/cgroup/rce/$runner /sys/fs/cgroup/*/rce/$runner; do
      [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
    done
  done
  return 0
}
trap cleanup EXIT
cleanup

# The compatibility tests' pinned Python clients (the Judge0 SDK), before any test needs them.
RCE_COMPAT_PYTHON=$(bash scripts/compat-venv.sh)
export RCE_COMPAT_PYTHON

# The fault tests start these binaries as processes of their own.
cargo build --quiet -p rce-api -p rce-runner
status=0
cargo test --workspace --no-fail-fast -- --test-threads="${RCE_TEST_THREADS:-4}" --skip wide_trees:: || status=$?
# Alone and one at a time: they check that a container which held 20,000 directories is cleaned
# within the shim's cleanup budget and runs the next job, which on a 2-core machine saturated by
# the other tests' jobs it is not (the budget is wall time; past it the container is replaced,
# correctly, and the test would only measure the load).
cargo test -p rce-tests --test it --no-fail-fast -- --test-threads=1 wide_trees:: || status=$?
# The api against its OpenAPI document: a bounded schemathesis run (scripts/fuzz.sh).
RCE_FUZZ_IN_TEST=1 bash scripts/fuzz.sh || status=$?
# --nocapture: each fault test prints its tally (submitted / accepted / refused / completed / lost).
cargo test -p rce-tests --test faults -- --test-threads=1 --nocapture || status=$?
exit $status
