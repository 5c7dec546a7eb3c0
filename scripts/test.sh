#!/usr/bin/env bash
# `make test`: the whole suite. Starts what the tests need (Docker Engine, RabbitMQ, Redis), builds
# the images that are missing or stale, then runs unit and integration tests. The integration
# tests run their own api and runner in-process, on a RabbitMQ vhost and Redis database of their
# own, so a `make up` service on the same machine is not disturbed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/require-rust.sh

bash scripts/ensure-services.sh
bash scripts/build-images.sh

cleanup() {
  # The test runner's containers (label rce.runner=it) outlive the test process; remove them.
  ids=$(docker ps -aq --filter label=rce.managed=true --filter label=rce.runner=it)
  [ -z "$ids" ] || docker rm -f $ids >/dev/null
}
trap cleanup EXIT
cleanup

cargo test --workspace --no-fail-fast -- --test-threads="${RCE_TEST_THREADS:-4}"
