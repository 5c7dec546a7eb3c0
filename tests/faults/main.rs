//! Fault tests: each one breaks something real on purpose (kills or freezes a runner, restarts
//! RabbitMQ, Redis or the Docker daemon, feeds the runner garbage) while jobs are in flight, and
//! checks that every accepted job still ends, exactly once.
//!
//! They run the built `rce-api` and `rce-runner` binaries as child processes (build them first:
//! `cargo build -p rce-api -p rce-runner`), each test on its own RabbitMQ vhost and on Redis
//! database 14. Because they restart shared daemons, they must run one at a time, and not while
//! anything else uses this machine's RabbitMQ, Redis or Docker:
//!
//! ```sh
//! cargo test -p rce-tests --test faults -- --test-threads=1
//! ```

mod docker_restart;
mod harness;
mod rabbitmq_restart_burst;
mod redis_restart;
mod runner_kill9;
mod runner_sigterm;
mod stuck_runner;
mod unparseable_messages;
