# The README's commands. Each script says what it does at its top.
.PHONY: up down test fuzz images lint bench

## Bring the whole service up: services, images, api and runner; prints where to point curl.
up:
	@bash scripts/up.sh

## Stop what `make up` started.
down:
	@bash scripts/down.sh

## Run the whole test suite (starts what it needs: Docker, RabbitMQ, Redis, images).
test:
	@bash scripts/test.sh

## Fuzz the api against api/openapi.json with schemathesis (a few minutes; part of `make test`).
fuzz:
	@bash scripts/fuzz.sh

## Build the language images that are missing or out of date (IMAGES="python c" for some).
images:
	@bash scripts/build-images.sh $(IMAGES)

## Formatting and lints, as CI wants them.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p rce-tests --test faults -- -D warnings

## Benchmarks: latency sweeps and a burst against its own api and runner; report in docs/benchmarks.md (BENCH_QUICK=1: smoke run).
bench:
	@bash bench/run.sh $(BENCH_ARGS)
