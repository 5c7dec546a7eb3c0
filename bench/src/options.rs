//! Command-line options. The defaults size a full run to well under 15 minutes on two cores;
//! `--quick` (or `BENCH_QUICK=1`) shrinks every count to a smoke run of a minute or two.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
rce-bench: latency sweeps and a burst against its own api and runner (run it through `make bench`)

options (a value may also be given as --name=value):
  --quick                 smoke run: few samples, a burst of 300 (also: BENCH_QUICK=1)
  --samples N             measured jobs per cell on the fast paths: floor, project (default 300)
  --naive-samples N       measured jobs per cell on the container-per-job paths (default 40)
  --warmup N              unmeasured jobs before each fast-path cell (default 10); the naive
                          paths warm up with one job per concurrent worker
  --concurrency LIST      comma-separated concurrency levels (default 1,2,4)
  --languages LIST        languages to measure, of python,c (default python,c)
  --paths LIST            of floor,agent,exec,naive-api,naive-cli (default all)
  --pool N                warm containers per measured language (default 4)
  --burst N               burst submissions; 0 skips the burst (default 10000)
  --burst-in-flight N     concurrent submissions during the burst (default 64)
  --drain-timeout SECS    how long accepted burst jobs may take to end (default 900)
  --judge-tests N         judge mode: tests in the C++ a+b judge job (default 1000)
  --judge-rounds N        judge mode: rounds of a native loop and a judge job (default 5)
  --judge-repeat N        judge mode: runs of a CPU-bound test, natively and as tests of one job, for cpu_ms repeatability (default 100; 0: none)
  --judge-naive N         judge mode: plain jobs run for the naive way (fewer than the tests:
                          extrapolated to all of them); 0 skips it (default 1000)
  --judge-input-mib LIST  judge mode: sizes of the large stdin_file, MiB; 0 skips it
                          (default 64,32)
  --no-judge              skip the judge-mode part
  --judge-only            only the judge-mode part (its section of docs/benchmarks.md alone)
  --no-docs               do not touch docs/benchmarks.md and docs/bench/*.svg
  --from-json FILE        only re-render the docs and plots from an earlier results.json
  -h, --help              this text
";

/// One path a job can take, from the cheapest to the most expensive way to run a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    /// The program run natively on the host: what no sandbox can beat.
    Floor,
    /// The project, agent mode: the warm container's shim forks the job.
    Agent,
    /// The project, exec mode: one `docker exec` of the shim per job.
    Exec,
    /// A new container per job through the engine API (create, start, wait, logs, remove).
    NaiveApi,
    /// A new container per job with `docker run --rm`.
    NaiveCli,
}

impl PathKind {
    pub const ALL: [PathKind; 5] = [
        PathKind::Floor,
        PathKind::Agent,
        PathKind::Exec,
        PathKind::NaiveApi,
        PathKind::NaiveCli,
    ];

    pub fn id(self) -> &'static str {
        match self {
            PathKind::Floor => "floor",
            PathKind::Agent => "agent",
            PathKind::Exec => "exec",
            PathKind::NaiveApi => "naive-api",
            PathKind::NaiveCli => "naive-cli",
        }
    }

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            PathKind::Floor => "floor (native process)",
            PathKind::Agent => "project, agent mode",
            PathKind::Exec => "project, exec mode",
            PathKind::NaiveApi => "naive, engine API",
            PathKind::NaiveCli => "naive, docker run --rm",
        }
    }

    /// Whether a job on this path goes through the project's api and runner.
    pub fn is_project(self) -> bool {
        matches!(self, PathKind::Agent | PathKind::Exec)
    }

    /// Whether a job on this path pays for a whole new container.
    pub fn is_naive(self) -> bool {
        matches!(self, PathKind::NaiveApi | PathKind::NaiveCli)
    }

    fn parse(text: &str) -> anyhow::Result<Self> {
        PathKind::ALL
            .into_iter()
            .find(|p| p.id() == text)
            .with_context(|| {
                format!("unknown path {text:?} (floor, agent, exec, naive-api, naive-cli)")
            })
    }
}

/// Everything one run is told.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Options {
    pub quick: bool,
    /// Measured jobs per cell on the paths that cost milliseconds (floor, project).
    pub samples: usize,
    /// Measured jobs per cell on the container-per-job paths, which cost hundreds of ms each.
    pub naive_samples: usize,
    /// Unmeasured jobs before each fast-path cell: connections, caches and the pool settle.
    pub warmup: usize,
    pub concurrency: Vec<usize>,
    pub languages: Vec<String>,
    pub paths: Vec<PathKind>,
    /// Warm containers per measured language, so concurrency 4 does not queue behind a pool of
    /// two (the repository's topology.yaml has 2).
    pub pool: usize,
    pub burst: usize,
    pub burst_in_flight: usize,
    pub drain_timeout_secs: u64,
    /// Judge mode: whether it runs, and whether alone.
    #[serde(default)]
    pub judge: bool,
    #[serde(default)]
    pub judge_only: bool,
    #[serde(default)]
    pub judge_tests: usize,
    #[serde(default)]
    pub judge_rounds: usize,
    #[serde(default)]
    pub judge_naive: usize,
    #[serde(default)]
    pub judge_input_mib: Vec<usize>,
    /// Runs of the CPU-bound test for repeatability (natively, and as tests of one job).
    #[serde(default)]
    pub judge_repeat: usize,
    #[serde(skip)]
    pub write_docs: bool,
    #[serde(skip)]
    pub from_json: Option<PathBuf>,
    #[serde(skip)]
    pub help: bool,
    /// The command line as the user typed it (`make bench`, from `bench/run.sh`), for the report.
    pub command: String,
}

/// The most tests a judge-mode job may carry (the api's limit).
pub use rce_protocol::judge::MAX_TESTS as MAX_JUDGE_TESTS;

/// The languages the bench has programs for (see `workload`).
pub const KNOWN_LANGUAGES: [&str; 2] = ["python", "c"];

impl Default for Options {
    fn default() -> Self {
        Self {
            quick: false,
            samples: 300,
            naive_samples: 40,
            warmup: 10,
            concurrency: vec![1, 2, 4],
            languages: KNOWN_LANGUAGES.iter().map(|l| l.to_string()).collect(),
            paths: PathKind::ALL.to_vec(),
            pool: 4,
            burst: 10_000,
            burst_in_flight: 64,
            drain_timeout_secs: 900,
            judge: true,
            judge_only: false,
            judge_tests: 1000,
            judge_rounds: 5,
            judge_naive: 1000,
            judge_input_mib: vec![64, 32],
            judge_repeat: 100,
            write_docs: true,
            from_json: None,
            help: false,
            command: "rce-bench".into(),
        }
    }
}

impl Options {
    /// The quick smoke run's counts; explicit options given after `--quick` still win.
    fn make_quick(&mut self) {
        self.quick = true;
        self.samples = 15;
        self.naive_samples = 4;
        self.warmup = 3;
        self.burst = 300;
        self.drain_timeout_secs = 120;
        self.judge_tests = 200;
        self.judge_rounds = 2;
        self.judge_naive = 10;
        self.judge_input_mib = vec![16];
        self.judge_repeat = 20;
    }

    /// Whether the load generator's cells and burst run (not with `--judge-only`).
    pub fn load_generator(&self) -> bool {
        !self.judge_only
    }

    /// Whether the judge-mode part runs.
    pub fn judge_part(&self) -> bool {
        self.judge || self.judge_only
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }

    /// `BENCH_QUICK=1` and `RCE_BENCH_COMMAND` from the environment, then the arguments.
    pub fn from_env_and_args(args: impl IntoIterator<Item = String>) -> anyhow::Result<Self> {
        let quick_env = std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let args: Vec<String> = args.into_iter().collect();
        let mut options = Self::parse(quick_env, &args)?;
        options.command = match std::env::var("RCE_BENCH_COMMAND") {
            Ok(command) if !command.is_empty() => command,
            _ => {
                let mut words = vec!["target/release/rce-bench".to_string()];
                words.extend(args);
                words.join(" ")
            }
        };
        Ok(options)
    }

    pub fn parse(quick: bool, args: &[String]) -> anyhow::Result<Self> {
        let mut options = Self::default();
        if quick || args.iter().any(|a| a == "--quick") {
            options.make_quick();
        }
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
                _ => (arg.as_str(), None),
            };
            let mut value = || -> anyhow::Result<String> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => args
                        .next()
                        .cloned()
                        .with_context(|| format!("{name} needs a value")),
                }
            };
            match name {
                "--quick" => {}
                "-h" | "--help" => options.help = true,
                "--no-docs" => options.write_docs = false,
                "--no-judge" => options.judge = false,
                "--judge-only" => options.judge_only = true,
                "--judge-tests" => {
                    options.judge_tests = positive(name, &value()?)?;
                    if options.judge_tests > MAX_JUDGE_TESTS {
                        bail!("--judge-tests: a job has at most {MAX_JUDGE_TESTS} tests");
                    }
                }
                "--judge-rounds" => options.judge_rounds = positive(name, &value()?)?,
                "--judge-naive" => options.judge_naive = number(name, &value()?)?,
                "--judge-repeat" => {
                    options.judge_repeat = number(name, &value()?)?;
                    if options.judge_repeat > MAX_JUDGE_TESTS {
                        bail!("--judge-repeat: a job has at most {MAX_JUDGE_TESTS} tests");
                    }
                }
                "--judge-input-mib" => {
                    options.judge_input_mib = list(&value()?)
                        .map(|m| number(name, m))
                        .filter(|m| !matches!(m, Ok(0)))
                        .collect::<anyhow::Result<_>>()?;
                }
                "--samples" => options.samples = positive(name, &value()?)?,
                "--naive-samples" => options.naive_samples = positive(name, &value()?)?,
                "--warmup" => options.warmup = number(name, &value()?)?,
                "--pool" => options.pool = positive(name, &value()?)?,
                "--burst" => options.burst = number(name, &value()?)?,
                "--burst-in-flight" => options.burst_in_flight = positive(name, &value()?)?,
                "--drain-timeout" => options.drain_timeout_secs = positive(name, &value()?)? as u64,
                "--from-json" => options.from_json = Some(PathBuf::from(value()?)),
                "--concurrency" => {
                    options.concurrency = list(&value()?)
                        .map(|c| positive("--concurrency", c))
                        .collect::<anyhow::Result<_>>()?;
                }
                "--languages" => {
                    options.languages = list(&value()?).map(String::from).collect();
                    if let Some(l) = options
                        .languages
                        .iter()
                        .find(|l| !KNOWN_LANGUAGES.contains(&l.as_str()))
                    {
                        bail!("--languages: no bench program for {l:?} (have python, c)");
                    }
                }
                "--paths" => {
                    options.paths = list(&value()?)
                        .map(PathKind::parse)
                        .collect::<anyhow::Result<_>>()?;
                    options.paths.sort();
                    options.paths.dedup();
                }
                other => bail!("unknown option {other:?} (see --help)"),
            }
        }
        if options.judge_only && !options.judge {
            bail!("--judge-only and --no-judge contradict each other");
        }
        if options.concurrency.is_empty() || options.languages.is_empty() {
            bail!("--concurrency and --languages need at least one value");
        }
        Ok(options)
    }
}

fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn number(name: &str, text: &str) -> anyhow::Result<usize> {
    text.parse()
        .with_context(|| format!("{name} wants a whole number, not {text:?}"))
}

fn positive(name: &str, text: &str) -> anyhow::Result<usize> {
    match number(name, text)? {
        0 => bail!("{name} must be at least 1"),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let o = Options::parse(false, &[]).unwrap();
        assert_eq!((o.samples, o.naive_samples, o.burst), (300, 40, 10_000));
        let o = Options::parse(
            false,
            &args("--samples 50 --concurrency=1,8 --paths exec,floor"),
        )
        .unwrap();
        assert_eq!(o.samples, 50);
        assert_eq!(o.concurrency, vec![1, 8]);
        assert_eq!(o.paths, vec![PathKind::Floor, PathKind::Exec]);
    }

    #[test]
    fn quick_is_small_and_explicit_counts_still_win() {
        let o = Options::parse(true, &[]).unwrap();
        assert!(o.quick && o.burst == 300 && o.samples < 50);
        let o = Options::parse(false, &args("--burst 50 --quick")).unwrap();
        assert!(o.quick);
        assert_eq!(o.burst, 50);
    }

    #[test]
    fn bad_options_are_errors() {
        assert!(Options::parse(false, &args("--samples")).is_err());
        assert!(Options::parse(false, &args("--samples 0")).is_err());
        assert!(Options::parse(false, &args("--languages ruby")).is_err());
        assert!(Options::parse(false, &args("--paths fast")).is_err());
        assert!(Options::parse(false, &args("--frobnicate")).is_err());
        assert!(Options::parse(false, &args("--judge-tests 1001")).is_err());
        assert!(Options::parse(false, &args("--judge-only --no-judge")).is_err());
    }

    #[test]
    fn judge_options() {
        let o = Options::parse(false, &[]).unwrap();
        assert!(o.judge_part() && o.load_generator());
        assert_eq!(
            (
                o.judge_tests,
                o.judge_rounds,
                o.judge_naive,
                o.judge_input_mib
            ),
            (1000, 5, 1000, vec![64, 32])
        );
        let o = Options::parse(
            false,
            &args("--judge-only --judge-naive 0 --judge-input-mib 0"),
        )
        .unwrap();
        assert!(o.judge_part() && !o.load_generator());
        assert_eq!(o.judge_naive, 0);
        assert!(o.judge_input_mib.is_empty());
        let o = Options::parse(false, &args("--no-judge")).unwrap();
        assert!(!o.judge_part() && o.load_generator());
    }
}
