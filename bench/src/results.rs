//! What one run measured, as written to `target/bench/results.json` and read back by
//! `--from-json` to re-render the report without measuring again.

use crate::machine::Machine;
use crate::options::{Options, PathKind};
use crate::proc_stats::CpuSpent;
use crate::stats::LatencySummary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchResults {
    pub command: String,
    /// UTC, RFC 3339.
    pub date: String,
    pub options: Options,
    pub machine: Machine,
    /// Exec mode of every language id the runner served (`python`, `python_exec`, ...), as the
    /// generated topology resolved it.
    pub exec_modes: BTreeMap<String, String>,
    /// Warm containers of each measured language in the repository's topology.yaml, before the
    /// bench enlarged them to `options.pool`.
    #[serde(default)]
    pub base_pools: BTreeMap<String, usize>,
    pub cells: Vec<CellResult>,
    pub burst: Option<BurstResult>,
    /// Judge mode against native runs and a plain job per test (`judge_bench`).
    #[serde(default)]
    pub judge: Option<crate::judge_bench::JudgeResult>,
    /// Seconds the whole run took, services' start and stop included.
    pub duration_secs: f64,
}

/// The program's own cost inside the sandbox, as the service reported it for one job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramCost {
    pub run_wall_ms: f64,
    pub run_cpu_ms: f64,
    pub compile_wall_ms: Option<f64>,
    pub compile_cpu_ms: Option<f64>,
    pub queue_ms: Option<f64>,
}

/// Medians of [`ProgramCost`] over a cell's jobs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramMedians {
    pub run_wall_ms: f64,
    pub run_cpu_ms: f64,
    pub compile_wall_ms: Option<f64>,
    pub compile_cpu_ms: Option<f64>,
    pub queue_ms: Option<f64>,
}

impl ProgramMedians {
    pub fn of(costs: &[ProgramCost]) -> Option<Self> {
        use crate::stats::median;
        let field = |f: fn(&ProgramCost) -> Option<f64>| -> Option<f64> {
            median(&costs.iter().filter_map(f).collect::<Vec<_>>())
        };
        Some(Self {
            run_wall_ms: field(|c| Some(c.run_wall_ms))?,
            run_cpu_ms: field(|c| Some(c.run_cpu_ms))?,
            compile_wall_ms: field(|c| c.compile_wall_ms),
            compile_cpu_ms: field(|c| c.compile_cpu_ms),
            queue_ms: field(|c| c.queue_ms),
        })
    }

    /// Wall time the program itself spent in the sandbox: compile (if any) plus run.
    pub fn program_wall_ms(&self) -> f64 {
        self.run_wall_ms + self.compile_wall_ms.unwrap_or(0.0)
    }
}

/// One path × language × concurrency.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellResult {
    pub path: PathKind,
    pub language: String,
    pub concurrency: usize,
    /// Measured jobs (failures included).
    pub jobs: usize,
    pub failures: usize,
    /// The first few distinct failure messages.
    pub errors: Vec<String>,
    /// Client-measured latency of the jobs that succeeded, ms.
    pub latency: Option<LatencySummary>,
    /// Jobs (failures included) per second of the cell's wall time.
    pub jobs_per_sec: f64,
    pub wall_secs: f64,
    /// CPU per measured job.
    pub cpu_per_job: CpuSpent,
    /// Project paths only: what the service reported about the program itself.
    pub program: Option<ProgramMedians>,
}

impl CellResult {
    pub fn p50(&self) -> Option<f64> {
        self.latency.as_ref().map(|l| l.p50)
    }
}

/// The burst of submissions without `wait`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BurstResult {
    pub language: String,
    pub submissions: usize,
    pub in_flight: usize,
    pub accepted: usize,
    /// Count of 503 answers (queue full, broker or store unavailable); never retried.
    pub rejected_503: usize,
    /// Other answers that were not 202, by status code ("error" for transport failures).
    pub other_failures: BTreeMap<String, usize>,
    pub submit_secs: f64,
    /// Accepted submissions per second of the submission phase.
    pub admission_per_sec: f64,
    /// Latency of the submissions (`POST /v1/jobs`) during the burst, ms.
    pub submit_latency: Option<LatencySummary>,
    /// First submission until the last accepted job was seen ended.
    pub drain_secs: f64,
    /// First submission until the latest `finished_at` among the accepted jobs (server clock).
    pub drain_secs_by_finished_at: Option<f64>,
    /// Accepted jobs per second of the drain.
    pub completed_per_sec: f64,
    /// Accepted jobs that had not ended when the drain timeout ran out (must be 0).
    pub lost: usize,
    /// Ended jobs whose verdict was not `ok`, by verdict.
    pub not_ok: BTreeMap<String, usize>,
    pub api_peak_rss_kb: u64,
    pub runner_peak_rss_kb: u64,
    /// `VmHWM` at the end: the high-water mark since the process started (earlier cells included).
    pub api_hwm_kb: u64,
    pub runner_hwm_kb: u64,
    /// api + runner CPU per accepted job over the burst and its drain.
    pub cpu_per_job: CpuSpent,
    pub queue_max_length: u32,
}
