//! Judge mode against the naive way of judging, in the same run as the rest of the bench:
//!
//! 1. **Per-test overhead**: a C++ a+b with N tests (distinct inputs) as one judge-mode job,
//!    against the same program compiled once with g++ and run natively N times on the same
//!    inputs. What a test costs in the service is `(job wall − compile wall) / N`; the native
//!    run's `wall / N` is subtracted from it.
//! 2. **The naive way**: the same tests as separate plain jobs (compile and run in every one, as
//!    Judge0 users do), the client comparing each stdout with the expected one; a sample of them
//!    when all N would take too long, extrapolated to N.
//! 3. **Large inputs**: each one's upload through `POST /v1/files`, a first judge job reading
//!    it as `stdin_file` (the runner's disk cache is empty: it fetches and verifies the file),
//!    and a second one (served from the cache).

use crate::cell::{run_batch, JobFn};
use crate::child_process::snippet;
use crate::proc_stats::{CpuMeter, CpuSpent};
use crate::project::check_job;
use crate::stats::{median, LatencySummary};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The language judged: compiled, so a plain job per test pays a compile every time.
pub const LANGUAGE: &str = "cpp";

/// The a+b solution: C stdio, so the program's own start is as small as C++ makes it.
pub const AB_SOURCE: &str = "#include <cstdio>\n\nint main() {\n    long long a, b;\n    if (std::scanf(\"%lld %lld\", &a, &b) != 2) return 1;\n    std::printf(\"%lld\\n\", a + b);\n    return 0;\n}\n";

/// Reads all of stdin and prints how many bytes it read.
pub const COUNT_SOURCE: &str = "#include <cstdio>\n\nint main() {\n    static char buf[1 << 16];\n    unsigned long long total = 0;\n    std::size_t n;\n    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) total += n;\n    std::printf(\"%llu\\n\", total);\n    return 0;\n}\n";

/// The flags of the language's compile step in topology.yaml.
pub const CXX_FLAGS: [&str; 2] = ["-O2", "-std=gnu++17"];

/// How long one judge-mode job may take from the client's side (1,000 tests, two cores).
const JUDGE_TIMEOUT: Duration = Duration::from_secs(900);

/// What to measure.
#[derive(Clone, Debug)]
pub struct JudgeBenchSpec {
    pub api_url: String,
    pub tests: usize,
    pub rounds: usize,
    /// Plain jobs actually run for the naive way (0 skips it); extrapolated to `tests`.
    pub naive_jobs: usize,
    pub naive_concurrency: usize,
    /// Sizes of the large inputs (none: skipped).
    pub input_bytes: Vec<u64>,
    pub out_dir: PathBuf,
    /// The cpp pool's warm containers (the report says so).
    pub pool: usize,
    /// Runs of the CPU-bound test for repeatability, natively and as tests of one job (0: none).
    pub repeat_runs: usize,
}

/// One test: its input and the expected output.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub stdin: String,
    pub expected: String,
}

/// `n` a+b tests, no two inputs alike, sums beyond 32 bits for the larger ones.
pub fn ab_cases(n: usize) -> Vec<Case> {
    (0..n as i64)
        .map(|i| {
            let a = 7_000_003 * i + 17 - 500_000_000 * (i % 3);
            let b = 998_244_353 - 31 * i * i;
            Case {
                stdin: format!("{a} {b}\n"),
                expected: format!("{}\n", a + b),
            }
        })
        .collect()
}

/// Whether two outputs are the same tokens (the judge's `tokens` checker, for the client's side).
pub fn same_tokens(output: &[u8], expected: &[u8]) -> bool {
    output
        .split(u8::is_ascii_whitespace)
        .filter(|t| !t.is_empty())
        .eq(expected
            .split(u8::is_ascii_whitespace)
            .filter(|t| !t.is_empty()))
}

/// Everything the judge part measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JudgeResult {
    pub language: String,
    pub tests: usize,
    pub pool: usize,
    /// How the native binary was compiled (`host g++ 12.2.0`, or inside the image).
    pub native_compiler: String,
    /// The first judge job, not counted in the rounds: the runner's disk cache had none of its
    /// tests' files yet.
    pub first_job: Option<JudgeJob>,
    pub rounds: Vec<JudgeRound>,
    pub naive: Option<NaiveResult>,
    #[serde(default)]
    pub large_inputs: Vec<LargeInput>,
    /// The same CPU-bound test, run again and again: how much its `cpu_ms` varies.
    #[serde(default)]
    pub repeatability: Option<Repeatability>,
    /// What went wrong, as precisely as the service said it (request and response).
    pub errors: Vec<String>,
}

impl JudgeResult {
    /// What went wrong: errors and failed plain jobs.
    pub fn failures(&self) -> usize {
        self.errors.len() + self.naive.as_ref().map_or(0, |n| n.failures)
    }

    /// Medians over the rounds of judge ms/test, native ms/test and their difference.
    pub fn medians(&self) -> Option<(f64, f64, f64)> {
        let of = |f: fn(&JudgeRound, usize) -> f64| {
            median(
                &self
                    .rounds
                    .iter()
                    .map(|r| f(r, self.tests))
                    .collect::<Vec<_>>(),
            )
        };
        Some((
            of(JudgeRound::judge_ms_per_test)?,
            of(JudgeRound::native_ms_per_test)?,
            of(JudgeRound::overhead_ms_per_test)?,
        ))
    }

    /// The median over the rounds of one figure of a round.
    pub fn median_of(&self, f: impl Fn(&JudgeRound) -> f64) -> Option<f64> {
        median(&self.rounds.iter().map(f).collect::<Vec<_>>())
    }
}

/// One judge-mode job as the client and the service saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeJob {
    /// Submission (`POST /v1/jobs?wait=true`) to the whole response read, ms.
    pub wall_ms: f64,
    pub compile_wall_ms: f64,
    pub compile_cpu_ms: f64,
    pub queue_ms: Option<f64>,
    /// `finished_at − started_at`: the runner's part (fetching the data, compile, every test).
    pub runner_ms: Option<f64>,
    /// `tests[].wall_ms` (the program in the sandbox, as the service measured it).
    pub test_wall_ms_sum: f64,
    pub test_wall_ms_median: f64,
    pub test_cpu_ms_median: f64,
    /// Size of the response body.
    pub response_bytes: usize,
}

impl JudgeJob {
    /// Per test, what the runner and the container spent around the program: the runner's
    /// span less the compile and the tests' own wall time, over `tests`.
    pub fn around_each_test_ms(&self, tests: usize) -> Option<f64> {
        let runner = self.runner_ms?;
        Some((runner - self.compile_wall_ms - self.test_wall_ms_sum) / tests.max(1) as f64)
    }

    /// Per test, what the job spent outside the runner's span (HTTP, storing the data, the
    /// queue, the result's way back), over `tests`.
    pub fn outside_runner_ms(&self, tests: usize) -> Option<f64> {
        Some((self.wall_ms - self.runner_ms?) / tests.max(1) as f64)
    }
}

/// One round: the native loop, then one judge job of the same tests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JudgeRound {
    pub job: JudgeJob,
    /// The tests run natively one after the other (spawn, input on a pipe, wait, compare), ms.
    pub native_wall_ms: f64,
    /// CPU over the native loop, whole.
    pub native_cpu: CpuSpent,
    /// CPU over the judge job, whole.
    pub judge_cpu: CpuSpent,
}

impl JudgeRound {
    /// What the job cost per test, compile left out: `(job wall − compile wall) / tests`.
    pub fn judge_ms_per_test(&self, tests: usize) -> f64 {
        (self.job.wall_ms - self.job.compile_wall_ms) / tests.max(1) as f64
    }

    pub fn native_ms_per_test(&self, tests: usize) -> f64 {
        self.native_wall_ms / tests.max(1) as f64
    }

    /// Judge mode's own cost per test, over what the program costs natively.
    pub fn overhead_ms_per_test(&self, tests: usize) -> f64 {
        self.judge_ms_per_test(tests) - self.native_ms_per_test(tests)
    }
}

/// The naive way: one plain job per test.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NaiveResult {
    /// Jobs run (of `JudgeResult::tests`).
    pub jobs: usize,
    pub concurrency: usize,
    pub failures: usize,
    pub errors: Vec<String>,
    pub wall_secs: f64,
    pub latency: Option<LatencySummary>,
    pub compile_wall_ms_median: Option<f64>,
    pub run_wall_ms_median: Option<f64>,
    /// Whole machine CPU per job, ms.
    pub cpu_per_job: CpuSpent,
}

impl NaiveResult {
    /// The wall time all `tests` would take at the measured rate.
    pub fn extrapolated_secs(&self, tests: usize) -> f64 {
        self.wall_secs * tests as f64 / self.jobs.max(1) as f64
    }
}

/// One large input.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LargeInput {
    /// Why it did not give all three figures.
    #[serde(default)]
    pub error: Option<String>,
    pub bytes: u64,
    /// `POST /v1/files` of the whole body until its answer, ms.
    pub upload_ms: Option<f64>,
    pub upload_status: Option<u16>,
    /// First job using it: the runner's disk cache is cold.
    pub first: Option<JudgeJob>,
    /// Second job: the same file, from the cache.
    pub second: Option<JudgeJob>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The judge part of a run. Failures are kept in `errors` (and fail the run), never hidden.
pub async fn run(spec: &JudgeBenchSpec, cpu: &CpuMeter) -> JudgeResult {
    let mut result = JudgeResult {
        language: LANGUAGE.into(),
        tests: spec.tests,
        pool: spec.pool,
        ..Default::default()
    };
    let client = match reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(JUDGE_TIMEOUT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            result.errors.push(format!("HTTP client: {e}"));
            return result;
        }
    };
    let cases = Arc::new(ab_cases(spec.tests));

    match per_test_overhead(spec, &client, &cases, cpu, &mut result).await {
        Ok(()) => {}
        Err(e) => result.errors.push(format!("per-test overhead: {e:#}")),
    }
    if spec.naive_jobs > 0 {
        let naive = naive_jobs(spec, &client, &cases, cpu).await;
        println!(
            "  naive: {} plain jobs at c={}: {:.1} s ({} failed), p50 {:.0} ms per job; all {} would take ≈{:.0} s",
            naive.jobs,
            naive.concurrency,
            naive.wall_secs,
            naive.failures,
            naive.latency.as_ref().map_or(0.0, |l| l.p50),
            spec.tests,
            naive.extrapolated_secs(spec.tests)
        );
        for e in &naive.errors {
            println!("    error: {e}");
        }
        result.naive = Some(naive);
    }
    if spec.repeat_runs > 0 {
        match repeatability(spec, &client).await {
            Ok(r) => result.repeatability = Some(r),
            Err(e) => result.errors.push(format!("repeatability: {e:#}")),
        }
    }
    for &bytes in &spec.input_bytes {
        let mut large = LargeInput {
            bytes,
            ..Default::default()
        };
        if let Err(e) = large_input(spec, &client, &mut large).await {
            println!("    error: {e:#}");
            result
                .errors
                .push(format!("{} MiB input: {e:#}", bytes >> 20));
            large.error = Some(format!("{e:#}"));
        }
        result.large_inputs.push(large);
    }
    result
}

/// Compiles the a+b for the native loop: the host's g++ with the topology's flags, or, without
/// one, the same g++ inside the language's image (`docker run`, the binary written to a bind
/// mount). Returns the binary and how it was made.
async fn compile_native(out_dir: &Path, image: &str) -> anyhow::Result<(PathBuf, String)> {
    compile_native_source(out_dir, image, "ab", AB_SOURCE).await
}

/// [`compile_native`] for any C++ `text`, as `name` (and `name.cpp`).
async fn compile_native_source(
    out_dir: &Path,
    image: &str,
    name: &str,
    text: &str,
) -> anyhow::Result<(PathBuf, String)> {
    let dir = out_dir.join("judge-native");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let source = dir.join(format!("{name}.cpp"));
    std::fs::write(&source, text).with_context(|| format!("writing {}", source.display()))?;
    let binary = dir.join(name);
    let host = tokio::process::Command::new("g++")
        .args(CXX_FLAGS)
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .await;
    match host {
        Ok(out) if out.status.success() => {
            let version = first_line(&Command::new("g++").arg("-dumpfullversion").output()?);
            return Ok((binary, format!("the host's g++ {version}")));
        }
        Ok(out) => bail!(
            "g++ {} failed: {}",
            source.display(),
            snippet(&String::from_utf8_lossy(&out.stderr))
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("running the host's g++"),
    }
    // No g++ on the host: the image's, as this user, into the same folder.
    let uid = first_line(&Command::new("id").arg("-u").output()?);
    let gid = first_line(&Command::new("id").arg("-g").output()?);
    let out = tokio::process::Command::new("docker")
        .args(["run", "--rm", "--network", "none", "--user"])
        .arg(format!("{uid}:{gid}"))
        .arg("-v")
        .arg(format!("{}:/src", dir.display()))
        .args(["-w", "/src", "--entrypoint", "g++", image])
        .args(CXX_FLAGS)
        .args(["-o", &format!("/src/{name}"), &format!("/src/{name}.cpp")])
        .output()
        .await
        .context("docker run g++ (no g++ on the host)")?;
    if !out.status.success() {
        bail!(
            "g++ in {image} failed: {}",
            snippet(&String::from_utf8_lossy(&out.stderr))
        );
    }
    Ok((binary, format!("g++ inside {image} (the host has none)")))
}

fn first_line(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("unknown")
        .trim()
        .to_string()
}

/// Runs every case natively, one after the other, checking each output; the loop's wall time.
fn native_loop(binary: &Path, cases: &[Case]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for (i, case) in cases.iter().enumerate() {
        let mut child = Command::new(binary)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {}", binary.display()))?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(case.stdin.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() || !same_tokens(&out.stdout, case.expected.as_bytes()) {
            bail!(
                "native test {i}: exited {}, printed {:?}, expected {:?}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                case.expected
            );
        }
    }
    Ok(started.elapsed())
}

/// The body of the judge-mode job of `cases`.
pub fn judge_request(source: &str, cases: &[Case]) -> Value {
    let tests: Vec<Value> = cases
        .iter()
        .map(|c| json!({"stdin": c.stdin, "expected": c.expected}))
        .collect();
    json!({"language": LANGUAGE, "source": source, "tests": tests, "checker": {"type": "tokens"}})
}

/// Describes a request for an error message without its bulk.
fn describe_request(body: &Value) -> String {
    let mut shown = body.clone();
    if let Some(tests) = shown.get_mut("tests").and_then(Value::as_array_mut) {
        let n = tests.len();
        tests.truncate(2);
        if n > 2 {
            tests.push(json!(format!("… {} more tests", n - 2)));
        }
    }
    if let Some(source) = shown.get_mut("source") {
        *source = json!(format!(
            "<{} bytes of C++>",
            source.as_str().map_or(0, str::len)
        ));
    }
    shown.to_string()
}

/// Submits a judge-mode job with `wait=true` and checks that every test was accepted.
async fn judge_job(
    client: &reqwest::Client,
    spec: &JudgeBenchSpec,
    body: &Value,
    tests: usize,
) -> anyhow::Result<JudgeJob> {
    let url = format!("{}/v1/jobs?wait=true", spec.api_url);
    let started = Instant::now();
    let response = client
        .post(&url)
        .json(body)
        .send()
        .await
        .with_context(|| format!("POST {url} {}", describe_request(body)))?;
    let status = response.status();
    let text = response.text().await?;
    let wall_ms = ms(started.elapsed());
    if status != reqwest::StatusCode::OK {
        bail!(
            "POST /v1/jobs?wait=true {} answered HTTP {status}: {}",
            describe_request(body),
            snippet(&text)
        );
    }
    let job: Value = serde_json::from_str(&text).context("the job is not JSON")?;
    check_judge_job(&job, tests).map_err(|e| {
        let id = job["id"].as_str().unwrap_or_default();
        let log = spec.out_dir.join("runner.log");
        let said = runner_warnings(&log, id, 2);
        anyhow::anyhow!(
            "POST /v1/jobs?wait=true {} answered 200 after {wall_ms:.0} ms with job {id} that {e:#}{}",
            describe_request(body),
            if said.is_empty() {
                String::new()
            } else {
                format!("; the runner's log ({}) says: {}", log.display(), said.join(" | "))
            }
        )
    })?;
    let results = job["tests"].as_array().map_or(&[][..], Vec::as_slice);
    let field =
        |name: &str| -> Vec<f64> { results.iter().filter_map(|t| t[name].as_f64()).collect() };
    let walls = field("wall_ms");
    Ok(JudgeJob {
        wall_ms,
        compile_wall_ms: job["compile"]["wall_ms"].as_f64().unwrap_or(0.0),
        compile_cpu_ms: job["compile"]["cpu_ms"].as_f64().unwrap_or(0.0),
        queue_ms: job["queue_ms"].as_f64(),
        runner_ms: span_ms(&job["started_at"], &job["finished_at"]),
        test_wall_ms_sum: walls.iter().sum(),
        test_wall_ms_median: median(&walls).unwrap_or(0.0),
        test_cpu_ms_median: median(&field("cpu_ms")).unwrap_or(0.0),
        response_bytes: text.len(),
    })
}

/// The first `keep` distinct warnings or errors the runner logged about job `id`, without
/// their timestamps and spans (those differ between attempts).
pub fn runner_warnings(log: &Path, id: &str, keep: usize) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut said: Vec<String> = Vec::new();
    for line in text.lines() {
        if id.is_empty() || !line.contains(id) {
            continue;
        }
        let Some(at) = line.find(" WARN ").or_else(|| line.find(" ERROR ")) else {
            continue;
        };
        let message = &line[at + 1..];
        // `WARN job{...}: text`: the span names the attempt; keep the text.
        let message = snippet(&match message.split_once("}: ") {
            Some((level, text)) => format!("{} {text}", level.split(' ').next().unwrap_or("")),
            None => message.to_string(),
        });
        if !said.contains(&message) {
            said.push(message);
        }
        if said.len() == keep {
            break;
        }
    }
    said
}

/// Milliseconds between two RFC 3339 times of a job record.
fn span_ms(from: &Value, to: &Value) -> Option<f64> {
    let t = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str()?).ok();
    Some((t(to)? - t(from)?).num_microseconds()? as f64 / 1000.0)
}

/// Whether a judge-mode job shows all `tests` accepted; what is wrong, if not.
pub fn check_judge_job(job: &Value, tests: usize) -> anyhow::Result<()> {
    let (status, verdict) = (&job["status"], &job["verdict"]);
    if status != "completed" || verdict != "accepted" {
        let first_failed = job["tests"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["verdict"] != "accepted"));
        bail!(
            "ended {status} / {verdict}{}; compile: {}; first test not accepted: {}",
            job["error"]
                .as_str()
                .map_or(String::new(), |e| format!(", error {e:?}")),
            snippet(&job["compile"].to_string()),
            first_failed.map_or("none".into(), |t| snippet(&t.to_string()))
        );
    }
    let results = job["tests"].as_array().context("has no tests")?;
    if results.len() != tests {
        bail!("has {} test results for {tests} tests", results.len());
    }
    if let Some(t) = results.iter().find(|t| t["verdict"] != "accepted") {
        bail!("is accepted but has a test that is not: {t}");
    }
    let score = &job["score"];
    if score["points"].as_f64().is_none() || score["points"] != score["max_points"] {
        bail!("is accepted with a score of {score}");
    }
    Ok(())
}

fn print_job(what: &str, job: &JudgeJob, tests: usize) {
    println!(
        "  {what}: {:.0} ms (compile {:.0} ms, runner {:.0} ms, tests' own wall {:.0} ms in all, median {:.1} ms) = {:.2} ms/test without the compile",
        job.wall_ms,
        job.compile_wall_ms,
        job.runner_ms.unwrap_or(0.0),
        job.test_wall_ms_sum,
        job.test_wall_ms_median,
        (job.wall_ms - job.compile_wall_ms) / tests.max(1) as f64
    );
}

async fn per_test_overhead(
    spec: &JudgeBenchSpec,
    client: &reqwest::Client,
    cases: &Arc<Vec<Case>>,
    cpu: &CpuMeter,
    result: &mut JudgeResult,
) -> anyhow::Result<()> {
    let (binary, compiler) = compile_native(&spec.out_dir, "rce-cpp").await?;
    println!("  native a+b compiled with {compiler}");
    result.native_compiler = compiler;
    let body = judge_request(AB_SOURCE, cases);
    let first = judge_job(client, spec, &body, spec.tests).await?;
    print_job(
        "first judge job (cold file cache, not counted)",
        &first,
        spec.tests,
    );
    result.first_job = Some(first);
    for round in 1..=spec.rounds {
        let before = cpu.snapshot();
        let (binary_, cases_) = (binary.clone(), cases.clone());
        let native = tokio::task::spawn_blocking(move || native_loop(&binary_, &cases_))
            .await
            .context("the native loop panicked")??;
        let native_cpu = cpu.since(&before);
        let before = cpu.snapshot();
        let job = judge_job(client, spec, &body, spec.tests).await?;
        let judge_cpu = cpu.since(&before);
        let r = JudgeRound {
            job,
            native_wall_ms: ms(native),
            native_cpu,
            judge_cpu,
        };
        println!(
            "  round {round}: judge {:.0} ms (compile {:.0}) = {:.2} ms/test, native {:.2} ms/test, overhead {:.2} ms/test",
            r.job.wall_ms,
            r.job.compile_wall_ms,
            r.judge_ms_per_test(spec.tests),
            r.native_ms_per_test(spec.tests),
            r.overhead_ms_per_test(spec.tests)
        );
        result.rounds.push(r);
    }
    Ok(())
}

/// `naive_jobs` of the tests (evenly spread over them), each a plain job compiling and running
/// the program, `naive_concurrency` in flight; the client compares each stdout.
async fn naive_jobs(
    spec: &JudgeBenchSpec,
    client: &reqwest::Client,
    cases: &Arc<Vec<Case>>,
    cpu: &CpuMeter,
) -> NaiveResult {
    let jobs = spec.naive_jobs.min(cases.len()).max(1);
    let stride = (cases.len() / jobs).max(1);
    let picked: Arc<Vec<Case>> =
        Arc::new(cases.iter().step_by(stride).take(jobs).cloned().collect());
    let next = Arc::new(AtomicUsize::new(0));
    let url = Arc::new(format!("{}/v1/jobs?wait=true", spec.api_url));
    let client = client.clone();
    let job: JobFn = Arc::new(move || {
        let case = picked[next.fetch_add(1, Ordering::Relaxed) % picked.len()].clone();
        let (client, url) = (client.clone(), url.clone());
        Box::pin(async move {
            let body = json!({"language": LANGUAGE, "source": AB_SOURCE, "stdin": case.stdin});
            let response = client.post(url.as_str()).json(&body).send().await?;
            let status = response.status();
            let text = response.text().await?;
            if status != reqwest::StatusCode::OK {
                bail!("HTTP {status}: {}", snippet(&text));
            }
            let job: Value = serde_json::from_str(&text).context("the job is not JSON")?;
            let stdout = job["run"]["stdout"].as_str().unwrap_or_default();
            if !same_tokens(stdout.as_bytes(), case.expected.as_bytes()) {
                bail!(
                    "job {} printed {stdout:?} for {:?}, expected {:?}",
                    job["id"],
                    case.stdin,
                    case.expected
                );
            }
            // Checked by the client above; `check_job` adds status and verdict.
            Ok(Some(check_job(&job, stdout)?))
        })
    });
    let before = cpu.snapshot();
    let batch = run_batch(job, jobs, spec.naive_concurrency).await;
    let spent = cpu.since(&before);
    NaiveResult {
        jobs,
        concurrency: spec.naive_concurrency,
        failures: batch.failures,
        errors: batch.errors,
        wall_secs: batch.wall.as_secs_f64(),
        latency: LatencySummary::of(&batch.latencies_ms),
        compile_wall_ms_median: median(
            &batch
                .programs
                .iter()
                .filter_map(|p| p.compile_wall_ms)
                .collect::<Vec<_>>(),
        ),
        run_wall_ms_median: median(
            &batch
                .programs
                .iter()
                .map(|p| p.run_wall_ms)
                .collect::<Vec<_>>(),
        ),
        cpu_per_job: spent.per_job(jobs),
    }
}

/// `bytes` of test input that looks like one: lines of ten decimal numbers, the last line cut
/// to size.
pub fn large_input_bytes(bytes: u64) -> Vec<u8> {
    let bytes = bytes as usize;
    let mut out = Vec::with_capacity(bytes + 32);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut column = 0;
    while out.len() < bytes {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let _ = write!(out, "{}", x % 1_000_000_007);
        column += 1;
        out.push(if column % 10 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(bytes);
    if let Some(last) = out.last_mut() {
        *last = b'\n';
    }
    out
}

async fn large_input(
    spec: &JudgeBenchSpec,
    client: &reqwest::Client,
    large: &mut LargeInput,
) -> anyhow::Result<()> {
    let data = large_input_bytes(large.bytes);
    let size = data.len();
    let url = format!("{}/v1/files", spec.api_url);
    let started = Instant::now();
    let response = client
        .post(&url)
        .header("content-type", "application/octet-stream")
        .body(data)
        .send()
        .await
        .with_context(|| format!("POST /v1/files ({size} bytes)"))?;
    let status = response.status();
    let text = response.text().await?;
    large.upload_ms = Some(ms(started.elapsed()));
    large.upload_status = Some(status.as_u16());
    println!(
        "  upload of {size} bytes: HTTP {status} in {:.0} ms",
        large.upload_ms.unwrap_or(0.0)
    );
    if !status.is_success() {
        bail!(
            "POST /v1/files with {size} bytes answered HTTP {status}: {}",
            snippet(&text)
        );
    }
    let answer: Value = serde_json::from_str(&text).context("the upload's answer is not JSON")?;
    let id = answer["id"]
        .as_str()
        .with_context(|| format!("the upload's answer has no id: {text}"))?;
    if answer["size"].as_u64() != Some(size as u64) {
        bail!("POST /v1/files of {size} bytes answered {text}");
    }
    let body = json!({"language": LANGUAGE, "source": COUNT_SOURCE,
        "tests": [{"stdin_file": id, "expected": format!("{size}\n")}],
        "checker": {"type": "tokens"}});
    for (n, slot) in [(1, &mut large.first), (2, &mut large.second)] {
        let job = judge_job(client, spec, &body, 1).await?;
        print_job(&format!("job {n} reading it"), &job, 1);
        *slot = Some(job);
    }
    Ok(())
}

/// A CPU-bound test (about a tenth of a second here) that prints its own CPU time in µs
/// (`CLOCK_PROCESS_CPUTIME_ID`), so the native runs are measured by the same kernel clock.
const SPIN_SOURCE: &str = "#include <cstdio>\n#include <ctime>\nint main(){volatile unsigned long long x=0;for(unsigned long long i=0;i<400000000ULL;i++)x+=i;timespec t;clock_gettime(CLOCK_PROCESS_CPUTIME_ID,&t);printf(\"%lld\\n\",(long long)t.tv_sec*1000000+t.tv_nsec/1000);}";

/// The same CPU-bound test run many times: natively (one process after the other, its own CPU
/// clock) and as the tests of one judge-mode job (the cgroup's `cpu_ms`, and the program's own
/// clock printed back with `return_output`), in the same run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Repeatability {
    pub native_cpu_ms: Vec<f64>,
    pub judge_cpu_ms: Vec<f64>,
    pub judge_own_cpu_ms: Vec<f64>,
}

/// p50, p95 and p95 / p50 of `values`.
pub fn spread(values: &[f64]) -> Option<(f64, f64, f64)> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let p50 = crate::stats::percentile(&sorted, 50.0)?;
    let p95 = crate::stats::percentile(&sorted, 95.0)?;
    Some((p50, p95, p95 / p50))
}

async fn repeatability(
    spec: &JudgeBenchSpec,
    client: &reqwest::Client,
) -> anyhow::Result<Repeatability> {
    let n = spec.repeat_runs;
    let (binary, _) = compile_native_source(&spec.out_dir, "rce-cpp", "spin", SPIN_SOURCE).await?;
    let mut r = Repeatability::default();
    for _ in 0..n {
        let out = Command::new(&binary).output().context("running spin")?;
        let us: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .context("spin's output")?;
        r.native_cpu_ms.push(us / 1000.0);
    }
    let tests: Vec<Value> = (0..n).map(|_| json!({"stdin": ""})).collect();
    let body = json!({"language": LANGUAGE, "source": SPIN_SOURCE, "tests": tests,
        "return_output": true, "limits": {"cpu_time_ms": 5000}});
    let url = format!("{}/v1/jobs?wait=true", spec.api_url);
    let job: Value = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .context("the repeatability job")?
        .json()
        .await
        .context("the repeatability job's answer")?;
    if job["verdict"] != "accepted" {
        bail!(
            "the repeatability job ended {}: {}",
            job["verdict"],
            snippet(&job.to_string())
        );
    }
    for t in job["tests"].as_array().map_or(&[][..], Vec::as_slice) {
        r.judge_cpu_ms.push(t["cpu_ms"].as_f64().unwrap_or(0.0));
        if let Some(us) = t["stdout"]
            .as_str()
            .and_then(|s| s.trim().parse::<f64>().ok())
        {
            r.judge_own_cpu_ms.push(us / 1000.0);
        }
    }
    for (what, v) in [
        ("native", &r.native_cpu_ms),
        ("judge cgroup", &r.judge_cpu_ms),
        ("judge own clock", &r.judge_own_cpu_ms),
    ] {
        if let Some((p50, p95, ratio)) = spread(v) {
            println!(
                "  repeatability, {what}: p50 {p50:.1} ms, p95 {p95:.1} ms, p95/p50 {ratio:.3}"
            );
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cases_are_distinct_and_right() {
        let cases = ab_cases(1000);
        let inputs: std::collections::HashSet<&str> =
            cases.iter().map(|c| c.stdin.as_str()).collect();
        assert_eq!(inputs.len(), 1000);
        for c in &cases {
            let v: Vec<i64> = c
                .stdin
                .split_whitespace()
                .map(|t| t.parse().unwrap())
                .collect();
            assert_eq!(c.expected, format!("{}\n", v[0] + v[1]));
        }
        assert!(cases
            .iter()
            .any(|c| c.expected.trim().parse::<i64>().unwrap() > i64::from(i32::MAX)));
    }

    #[test]
    fn tokens_compare_like_the_checker() {
        assert!(same_tokens(b"3\n", b"3\n"));
        assert!(same_tokens(b"  3 \r\n", b"3"));
        assert!(!same_tokens(b"3 4", b"3"));
        assert!(!same_tokens(b"", b"3"));
        assert!(same_tokens(b"", b"\n"));
    }

    #[test]
    fn a_large_input_has_its_exact_size() {
        let data = large_input_bytes(1 << 20);
        assert_eq!(data.len(), 1 << 20);
        assert_eq!(data.last(), Some(&b'\n'));
        assert!(data
            .iter()
            .all(|b| b.is_ascii_digit() || *b == b' ' || *b == b'\n'));
    }

    #[test]
    fn the_request_and_its_check() {
        let body = judge_request(AB_SOURCE, &ab_cases(3));
        assert_eq!(body["tests"].as_array().unwrap().len(), 3);
        assert_eq!(body["checker"]["type"], "tokens");
        let shown = describe_request(&judge_request(AB_SOURCE, &ab_cases(1000)));
        assert!(
            shown.contains("998 more tests") && shown.len() < 400,
            "{shown}"
        );

        let ok = json!({"status": "completed", "verdict": "accepted",
            "score": {"points": 2.0, "max_points": 2.0},
            "tests": [{"verdict": "accepted"}, {"verdict": "accepted"}]});
        check_judge_job(&ok, 2).unwrap();
        assert!(check_judge_job(&ok, 3).is_err());
        let wrong = json!({"status": "completed", "verdict": "wrong_answer",
            "tests": [{"verdict": "accepted"}, {"verdict": "wrong_answer", "checker_message": "x"}]});
        let e = check_judge_job(&wrong, 2).unwrap_err().to_string();
        assert!(
            e.contains("wrong_answer") && e.contains("checker_message"),
            "{e}"
        );
    }

    #[test]
    fn per_test_figures() {
        let r = JudgeRound {
            job: JudgeJob {
                wall_ms: 3500.0,
                compile_wall_ms: 500.0,
                ..Default::default()
            },
            native_wall_ms: 1000.0,
            ..Default::default()
        };
        assert_eq!(r.judge_ms_per_test(1000), 3.0);
        assert_eq!(r.native_ms_per_test(1000), 1.0);
        assert_eq!(r.overhead_ms_per_test(1000), 2.0);
        let job = JudgeJob {
            wall_ms: 3500.0,
            compile_wall_ms: 500.0,
            runner_ms: Some(3300.0),
            test_wall_ms_sum: 800.0,
            ..Default::default()
        };
        assert_eq!(job.around_each_test_ms(1000), Some(2.0));
        assert_eq!(job.outside_runner_ms(1000), Some(0.2));
        let n = NaiveResult {
            jobs: 100,
            wall_secs: 20.0,
            ..Default::default()
        };
        assert_eq!(n.extrapolated_secs(1000), 200.0);
    }

    #[test]
    fn what_the_runner_said_about_a_job() {
        let dir = std::env::temp_dir().join(format!("rce-bench-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("runner.log");
        std::fs::write(
            &log,
            "2026-12-02T21:01:35.1Z  INFO job{job_id=j1 attempt=1}: started\n\
             2026-12-02T21:01:35.6Z  WARN job{job_id=j1 language=cpp attempt=1}: job failed error=boom\n\
             2026-12-02T21:01:35.7Z  WARN job{job_id=j2 attempt=1}: other job\n\
             2026-12-02T21:01:37.4Z  WARN job{job_id=j1 language=cpp attempt=2}: job failed error=boom\n\
             2026-12-02T21:01:37.5Z  WARN job{job_id=j1 language=cpp attempt=2}: handing it back\n",
        )
        .unwrap();
        assert_eq!(
            runner_warnings(&log, "j1", 5),
            vec!["WARN job failed error=boom", "WARN handing it back"]
        );
        assert!(runner_warnings(&log, "", 5).is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn spans_of_a_record() {
        let v = span_ms(
            &json!("2026-12-02T07:44:00.100Z"),
            &json!("2026-12-02T07:44:02.350Z"),
        );
        assert_eq!(v, Some(2250.0));
        assert_eq!(span_ms(&json!(null), &json!("x")), None);
    }
}
