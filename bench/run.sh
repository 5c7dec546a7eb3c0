#!/usr/bin/env bash
# `make bench`: the load generator and judge mode. Makes sure Docker, RabbitMQ and Redis run and
# the python, c and cpp images are built, builds api, runner and rce-bench (release), then runs
# rce-bench, which starts its own api and runner, measures, and writes target/bench/results.json,
# the report sections of docs/benchmarks.md and docs/bench/*.svg.
#
#   bash bench/run.sh [--quick] [rce-bench options...]     (see: target/release/rce-bench --help)
#   BENCH_QUICK=1 make bench                               (a smoke run of a minute or two)
#   make bench BENCH_ARGS="--samples 100 --burst 2000"
#   make bench BENCH_ARGS=--judge-only                     (judge mode alone, a few minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/require-rust.sh
export PATH=$PATH:/usr/sbin:/sbin # rabbitmqctl

bash scripts/ensure-services.sh
bash scripts/build-images.sh python c cpp
echo "building api, runner and rce-bench (release)..."
cargo build --release --quiet -p rce-api -p rce-runner -p rce-bench

# How the report names the command that produced it.
if [ -n "${MAKELEVEL:-}" ]; then
    command="make bench${*:+ BENCH_ARGS=\"$*\"}"
else
    command="bash bench/run.sh${*:+ $*}"
fi
case "${BENCH_QUICK:-}" in "" | 0) ;; *) command="BENCH_QUICK=1 $command" ;; esac
export RCE_BENCH_COMMAND=$command

exec "${CARGO_TARGET_DIR:-target}/release/rce-bench" "$@"
