//! `rce-bench`: one benchmark run on this machine. It starts its own api and runner, measures
//! latency sweeps of the project next to the native floor and a container per job, a burst of
//! submissions, and writes `target/bench/results.json`, the report section of
//! `docs/benchmarks.md` and the plots under `docs/bench/`.

pub mod bench_topology;
pub mod burst;
pub mod cell;
pub mod child_process;
pub mod docs_section;
pub mod floor;
pub mod machine;
pub mod naive_cli;
pub mod naive_engine;
pub mod options;
pub mod proc_stats;
pub mod project;
pub mod report;
pub mod results;
pub mod service_stack;
pub mod session;
pub mod stats;
pub mod svg_plot;
pub mod workload;
