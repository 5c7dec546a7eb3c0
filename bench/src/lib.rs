//! `rce-bench`: one benchmark run on this machine. It starts its own api and runner, measures
//! latency sweeps of the project next to the native floor and a container per job, a burst of
//! submissions, judge mode against native runs and a plain job per test, and writes
//! `target/bench/results.json`, the report sections of `docs/benchmarks.md` and the plots under
//! `docs/bench/`.

pub mod bench_topology;
pub mod burst;
pub mod cell;
pub mod child_process;
pub mod docs_section;
pub mod floor;
pub mod judge_bench;
pub mod judge_report;
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
