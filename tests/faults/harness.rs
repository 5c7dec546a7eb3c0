//! The rig every fault test stands on: the real `rce-api` and `rce-runner` binaries as child
//! processes (so a test can `kill -9`, freeze and SIGTERM them the way a crash or an orchestrator
//! would, which an in-process service cannot model), control over the real RabbitMQ, Redis and
//! Docker daemons, and the bookkeeping each test ends with: which accepted jobs ended, how, and
//! whether any job shows two results.
//!
//! Each test gets its own RabbitMQ vhost (`rce-faults-<test>`, recreated empty) and Redis
//! database [`REDIS_DB`] (flushed at the start of each test: the tests run one at a time). The
//! processes' logs go to a directory of their own per test, printed when the rig is dropped, with
//! the tail of every log when the test failed.

use futures_util::StreamExt;
use rce_tests::{free_port, repo_root};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runner id of every runner the fault tests start: its containers carry the docker label
/// `rce.runner=faults`, which is how the rig finds (and removes) them.
pub const RUNNER_ID: &str = "faults";
/// Redis database of the fault tests, apart from `make up` (0) and the `it` tests (15).
pub const REDIS_DB: u32 = 14;
/// The only language the test runners serve: two warm containers, so warm-up stays short.
pub const LANGUAGE: &str = "python";
/// Warm containers of [`LANGUAGE`] in topology.yaml.
pub const POOL_SIZE: usize = 2;
/// How long the api may take to answer `/readyz` 200 after it was spawned.
const API_STARTUP: Duration = Duration::from_secs(60);
/// How long a runner may take to warm its pool and answer `/healthz` (a cold Docker, two cores).
const RUNNER_STARTUP: Duration = Duration::from_secs(180);
/// Concurrent GETs when polling many jobs.
const POLL_CONCURRENCY: usize = 16;
const POLL_EVERY: Duration = Duration::from_millis(250);

/// `$CARGO_TARGET_DIR` (relative to the repository root when relative, as `make test` runs cargo
/// there), else the workspace's `target/`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => repo_root().join(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

/// A built service binary. The tests run the binaries rather than the libraries in-process so a
/// fault can hit one process without taking the test down with it.
fn binary(name: &str) -> PathBuf {
    let path = target_dir().join("debug").join(name);
    assert!(
        path.is_file(),
        "{} not found: run `cargo build -p rce-api -p rce-runner` first (make test does)",
        path.display()
    );
    path
}

/// Runs a command to completion and returns what it printed.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("could not run {program} {args:?}: {e}"))
}

#[track_caller]
fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Blocks until `ok()` holds, panicking with `what` after `within`.
#[track_caller]
fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what}: not the case after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// --- the rig ------------------------------------------------------------------------------------

/// Only one fault test may touch the daemons at a time: in this process, whatever
/// `--test-threads` says, and across processes (two runs at once would restart RabbitMQ under
/// each other and remove each other's containers). The lock is a directory, created atomically,
/// naming its holder's pid; a holder that died without releasing it is detected through /proc.
struct SuiteLock {
    dir: PathBuf,
}

impl SuiteLock {
    fn acquire(test: &str) -> Self {
        let dir = std::env::temp_dir().join("rce-faults.lock");
        let holder_file = dir.join("holder");
        let me = std::process::id();
        let mut told = false;
        loop {
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    std::fs::write(&holder_file, format!("{me} {test}")).expect("writing the lock");
                    return Self { dir };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => panic!("creating {}: {e}", dir.display()),
            }
            let holder = std::fs::read_to_string(&holder_file).unwrap_or_default();
            let alive = match holder.split_whitespace().next().map(str::parse::<u32>) {
                Some(Ok(pid)) => Path::new(&format!("/proc/{pid}")).exists(),
                // Being written right now, unless its writer died long ago.
                _ => std::fs::metadata(&dir)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(10)),
            };
            if !alive {
                std::fs::remove_dir_all(&dir).ok();
                continue;
            }
            if !told {
                eprintln!("{test}: waiting for {} (held by {holder})", dir.display());
                told = true;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for SuiteLock {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// One fault test's world: its vhost, its Redis database, its log directory. Dropping it (after
/// the processes, which tests declare after it) removes the containers its runners left.
pub struct Rig {
    pub test: &'static str,
    pub amqp_url: String,
    pub redis_url: String,
    pub logs: PathBuf,
    topology: PathBuf,
    /// Released after [`Rig`]'s own drop has cleaned up.
    _lock: SuiteLock,
}

impl Rig {
    /// Waits for its turn (see [`SuiteLock`]), recreates the test's vhost, flushes Redis database
    /// [`REDIS_DB`], removes containers a previous run left behind and makes a fresh log directory.
    pub async fn new(test: &'static str) -> Self {
        tokio::task::spawn_blocking(move || Self::prepare(test))
            .await
            .expect("preparing the rig")
    }

    fn prepare(test: &'static str) -> Self {
        let lock = SuiteLock::acquire(test);
        let vhost = format!("rce-faults-{}", test.replace('_', "-"));
        run("rabbitmqctl", &["delete_vhost", &vhost]); // absent on a first run: fine
        run_ok("rabbitmqctl", &["add_vhost", &vhost]);
        run_ok(
            "rabbitmqctl",
            &["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"],
        );
        run_ok("redis-cli", &["-n", &REDIS_DB.to_string(), "flushdb"]);
        remove_runner_containers();
        let logs = std::env::temp_dir().join(format!("rce-faults-{test}-{}", std::process::id()));
        std::fs::remove_dir_all(&logs).ok();
        std::fs::create_dir_all(&logs).expect("creating the log directory");
        Self {
            test,
            amqp_url: format!("amqp://guest:guest@127.0.0.1:5672/{vhost}"),
            redis_url: format!("redis://127.0.0.1:6379/{REDIS_DB}"),
            logs,
            topology: repo_root().join("topology.yaml"),
            _lock: lock,
        }
    }

    fn common_env(&self) -> Vec<(String, String)> {
        vec![
            ("RCE_AMQP_URL".into(), self.amqp_url.clone()),
            ("RCE_REDIS_URL".into(), self.redis_url.clone()),
            ("RCE_TOPOLOGY".into(), self.topology.display().to_string()),
            (
                "RUST_LOG".into(),
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            ),
        ]
    }

    fn spawn(
        &self,
        name: &str,
        binary_name: &str,
        env: Vec<(String, String)>,
        base: String,
    ) -> Proc {
        let log = self.logs.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("opening the log file");
        let child = Command::new(binary(binary_name))
            .envs(env)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {binary_name}: {e}"));
        Proc {
            name: name.to_string(),
            base,
            log,
            child,
            http: http_client(Duration::from_secs(5)),
        }
    }

    /// Spawns an api with `extra` env on top of the rig's, and waits until `/readyz` is 200.
    pub async fn api(&self, extra: &[(&str, &str)]) -> Proc {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut env = self.common_env();
        env.push(("RCE_API_ADDR".into(), addr.clone()));
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut api = self.spawn("api", "rce-api", env, format!("http://{addr}"));
        api.wait_ok("/readyz", API_STARTUP).await;
        api
    }

    /// Spawns a python-only runner (id [`RUNNER_ID`]) logging to `<name>.log`, and waits until
    /// `/healthz` answers, which it does once its pool is warm and its consumers are started.
    pub async fn runner(&self, name: &str, extra: &[(&str, &str)]) -> Proc {
        let addr = format!("127.0.0.1:{}", free_port());
        let mut env = self.common_env();
        env.extend([
            ("RCE_RUNNER_ID".into(), RUNNER_ID.into()),
            // Its own uid blocks, apart from `make up`'s (0) and the integration tests' (1).
            ("RCE_RUNNER_INDEX".into(), "3".into()),
            ("RCE_RUNNER_LANGUAGES".into(), LANGUAGE.into()),
            ("RCE_RUNNER_METRICS_ADDR".into(), addr.clone()),
        ]);
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut runner = self.spawn(name, "rce-runner", env, format!("http://{addr}"));
        runner.wait_ok("/healthz", RUNNER_STARTUP).await;
        runner
    }

    /// An HTTP client of `api`.
    pub fn client(&self, api: &Proc) -> Client {
        Client {
            base: api.base.clone(),
            http: http_client(Duration::from_secs(120)),
        }
    }

    /// A connection to the rig's Redis database, for the checks the API does not expose.
    pub async fn store(&self) -> Store {
        let client = redis::Client::open(self.redis_url.as_str()).expect("redis url");
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis reachable");
        Store { conn }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(dir) = std::fs::read_dir(&self.logs) {
                for entry in dir.flatten() {
                    eprintln!(
                        "----- last lines of {} -----\n{}",
                        entry.path().display(),
                        last_lines(&entry.path(), 40)
                    );
                }
            }
        }
        eprintln!("{}: logs in {}", self.test, self.logs.display());
        remove_runner_containers();
    }
}

fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("http client")
}

// --- processes ----------------------------------------------------------------------------------

/// A running api or runner. Signals go through the `kill` command, as an operator would send
/// them. Dropping it kills whatever is left of the process.
pub struct Proc {
    pub name: String,
    /// `http://127.0.0.1:<port>`: the api's address, or the runner's metrics address.
    pub base: String,
    pub log: PathBuf,
    child: Child,
    http: reqwest::Client,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: &str) {
        run_ok("kill", &["-s", signal, &self.pid().to_string()]);
    }

    /// SIGKILL: the process gets no chance to close connections, ack, or clean up.
    pub fn kill9(&mut self) {
        self.signal("KILL");
        self.child.wait().expect("reaping the killed process");
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Freezes the process: its sockets stay open, so peers see it alive but silent.
    pub fn sigstop(&self) {
        self.signal("STOP");
    }

    pub fn sigcont(&self) {
        self.signal("CONT");
    }

    /// The exit status, once the process has exited; `None` if it still runs after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the process") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A prober of `path` on this process, usable from another task.
    pub fn probe(&self, path: &str) -> Probe {
        Probe {
            url: format!("{}{path}", self.base),
            http: self.http.clone(),
        }
    }

    /// Waits until `path` answers 200; panics (with the log's tail) if the process exits first or
    /// `within` passes.
    pub async fn wait_ok(&mut self, path: &str, within: Duration) {
        let probe = self.probe(path);
        let deadline = Instant::now() + within;
        let mut last = None;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the process") {
                panic!(
                    "{} exited ({status}) while waiting for {path}; log {}:\n{}",
                    self.name,
                    self.log.display(),
                    last_lines(&self.log, 30)
                );
            }
            last = probe.status().await.or(last);
            if last == Some(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}{path} not 200 within {within:?} (last answer: {last:?}); log {}",
                self.base,
                self.log.display()
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGKILL ends a stopped process too.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One URL, polled for its HTTP status.
#[derive(Clone)]
pub struct Probe {
    pub url: String,
    http: reqwest::Client,
}

impl Probe {
    /// The status code, or `None` when nothing answered.
    pub async fn status(&self) -> Option<u16> {
        let resp = self.http.get(&self.url).send().await.ok()?;
        Some(resp.status().as_u16())
    }
}

// --- the daemons --------------------------------------------------------------------------------

/// Stops and restarts RabbitMQ's application (every client connection drops, queues survive on
/// disk), then waits until the AMQP port accepts connections again.
pub fn restart_rabbitmq() {
    run_ok("rabbitmqctl", &["stop_app"]);
    run_ok("rabbitmqctl", &["start_app"]);
    let addr: SocketAddr = "127.0.0.1:5672".parse().expect("address");
    wait_until(
        "RabbitMQ accepts AMQP connections",
        Duration::from_secs(120),
        || TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok(),
    );
}

pub fn redis_up() -> bool {
    let out = run("redis-cli", &["ping"]);
    String::from_utf8_lossy(&out.stdout).trim() == "PONG"
}

/// Shuts Redis down and waits until it stops answering. `shutdown save` writes the RDB snapshot
/// even if the running config had no save points (Debian's has), so the data outlives the restart.
pub fn stop_redis() {
    // redis-cli may report the closed connection as an error: only the outcome matters.
    run("redis-cli", &["shutdown", "save"]);
    wait_until("Redis stopped", Duration::from_secs(60), || !redis_up());
}

/// `scripts/ensure-services.sh`: starts whichever of Docker, RabbitMQ and Redis is down, and
/// returns once all three answer. A Redis restart is [`stop_redis`] then this, in two steps so the
/// test can act while Redis is certainly down.
pub fn start_services() {
    let script = repo_root().join("scripts/ensure-services.sh");
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .output()
        .expect("running ensure-services.sh");
    assert!(
        out.status.success(),
        "ensure-services.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pids of `dockerd`, found through /proc (procps may not be installed).
pub fn dockerd_pids() -> Vec<u32> {
    let Ok(proc_dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    proc_dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "dockerd")
        })
        .collect()
}

/// SIGTERMs dockerd (which stops every container first) and waits until it is gone.
pub fn stop_docker() {
    let pids = dockerd_pids();
    assert!(!pids.is_empty(), "no dockerd process found");
    for pid in pids {
        run("kill", &["-s", "TERM", &pid.to_string()]);
    }
    wait_until("dockerd exited", Duration::from_secs(120), || {
        dockerd_pids().is_empty()
    });
}

pub fn restart_docker() {
    stop_docker();
    start_services();
}

/// Ids of the containers of the test runners (label `rce.runner=faults`); all of them, or only
/// the running ones. Empty when Docker does not answer.
pub fn runner_containers(running_only: bool) -> Vec<String> {
    let runner_label = format!("label=rce.runner={RUNNER_ID}");
    let mut args = vec!["ps", "-q", "--filter", "label=rce.managed=true"];
    args.extend(["--filter", runner_label.as_str()]);
    if !running_only {
        args.push("-a");
    }
    let out = run("docker", &args);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Removes every test runner container; best effort (Docker may be the thing that is down).
pub fn remove_runner_containers() {
    let ids = runner_containers(false);
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids.iter().map(String::as_str));
        run("docker", &args);
    }
}

// --- jobs -----------------------------------------------------------------------------------------

/// A python job with a 5 s wall limit.
pub fn python(source: &str) -> Value {
    json!({"language": LANGUAGE, "source": source, "stdin": "", "limits": {"wall_time_ms": 5000}})
}

/// A python job that sleeps `secs` and then prints `marker`.
pub fn sleeper(secs: f64, marker: &str) -> Value {
    python(&format!(
        "import time\ntime.sleep({secs})\nprint({marker:?})"
    ))
}

pub fn is_terminal(job: &Value) -> bool {
    matches!(
        job["status"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

/// Whether `job` completed with verdict ok and printed `marker`.
pub fn ok_with(job: &Value, marker: &str) -> bool {
    job["status"] == "completed"
        && job["verdict"] == "ok"
        && job["run"]["stdout"]
            .as_str()
            .is_some_and(|s| s.contains(marker))
}

/// The answer to one submission. `status` 0 means no HTTP answer at all (connection refused,
/// timeout), which no fault excuses.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl Answer {
    /// The job id, when the job was accepted.
    pub fn id(&self) -> Option<String> {
        matches!(self.status, 200 | 202)
            .then(|| self.body["id"].as_str().map(String::from))
            .flatten()
    }

    /// The error code of a refusal.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("-")
    }
}

/// Accepted ids of `answers`, in submission order.
pub fn accepted(answers: &[Answer]) -> Vec<String> {
    answers.iter().filter_map(Answer::id).collect()
}

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    async fn post(&self, query: &str, job: &Value) -> Answer {
        let sent = self
            .http
            .post(format!("{}/v1/jobs{query}", self.base))
            .json(job)
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from);
                let body = resp.json().await.unwrap_or(Value::Null);
                Answer {
                    status,
                    retry_after,
                    body,
                }
            }
            Err(e) => Answer {
                status: 0,
                retry_after: None,
                body: json!({"transport_error": e.to_string()}),
            },
        }
    }

    /// `POST /v1/jobs`.
    pub async fn submit(&self, job: &Value) -> Answer {
        self.post("", job).await
    }

    /// `POST /v1/jobs?wait=true`; asserts the job finished (200) and returns it.
    pub async fn run(&self, job: &Value) -> Value {
        let answer = self.post("?wait=true", job).await;
        assert_eq!(answer.status, 200, "job did not finish: {answer:?}");
        answer.body
    }

    /// `GET /v1/jobs/{id}`; `None` unless it answers 200 (unknown yet, or the api's Redis is down).
    pub async fn job(&self, id: &str) -> Option<Value> {
        let resp = self
            .http
            .get(format!("{}/v1/jobs/{id}", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()?;
        if resp.status() != 200 {
            return None;
        }
        resp.json().await.ok()
    }

    /// Submits `jobs` from `workers` concurrent tasks in the background.
    pub fn burst(&self, jobs: Vec<Value>, workers: usize) -> Burst {
        let jobs = Arc::new(jobs);
        let answered = Arc::new(AtomicUsize::new(0));
        let pause_ms = Arc::new(AtomicU64::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(Mutex::new(vec![None; jobs.len()]));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let (client, jobs, next) = (self.clone(), jobs.clone(), next.clone());
            let (answered, pause_ms, answers) =
                (answered.clone(), pause_ms.clone(), answers.clone());
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = jobs.get(i) else { break };
                    let pause = pause_ms.load(Ordering::SeqCst);
                    if pause > 0 {
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                    let answer = client.submit(job).await;
                    answers.lock().unwrap()[i] = Some(answer);
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        let task = tokio::spawn(async move {
            while let Some(done) = tasks.join_next().await {
                done.expect("a submission worker panicked");
            }
            let answers = std::mem::take(&mut *answers.lock().unwrap());
            answers
                .into_iter()
                .map(|a| a.expect("every job was submitted"))
                .collect()
        });
        Burst {
            answered,
            pause_ms,
            task,
        }
    }

    /// Submits `jobs`, `workers` at a time, and returns the answers in submission order.
    pub async fn submit_all(&self, jobs: Vec<Value>, workers: usize) -> Vec<Answer> {
        self.burst(jobs, workers).finish().await
    }

    /// Polls `ids` until `done` holds for all of them or `within` passes. Returns the last view
    /// of every job (`Null` when it never answered 200) and the ids for which `done` never held.
    pub async fn wait_all(
        &self,
        ids: &[String],
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> (HashMap<String, Value>, Vec<String>) {
        let deadline = Instant::now() + within;
        let mut last: HashMap<String, Value> =
            ids.iter().map(|id| (id.clone(), Value::Null)).collect();
        let mut pending: Vec<String> = ids.to_vec();
        loop {
            let views: Vec<(String, Option<Value>)> = futures_util::stream::iter(pending.clone())
                .map(|id| async move {
                    let view = self.job(&id).await;
                    (id, view)
                })
                .buffer_unordered(POLL_CONCURRENCY)
                .collect()
                .await;
            for (id, view) in views {
                if let Some(view) = view {
                    last.insert(id, view);
                }
            }
            pending.retain(|id| !done(&last[id]));
            if pending.is_empty() || Instant::now() >= deadline {
                return (last, pending);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Waits until every id has a terminal status; see [`Ends`].
    pub async fn wait_terminal(&self, ids: &[String], within: Duration) -> Ends {
        let (jobs, lost) = self.wait_all(ids, within, is_terminal).await;
        Ends { jobs, lost }
    }

    /// Waits until `done` holds for at least one of `ids`; returns that job.
    pub async fn wait_any(
        &self,
        ids: &[String],
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            for id in ids {
                if let Some(job) = self.job(id).await {
                    if done(&job) {
                        return job;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no job of {ids:?} got there within {within:?}"
            );
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// Submissions running in the background (see [`Client::burst`]).
pub struct Burst {
    answered: Arc<AtomicUsize>,
    pause_ms: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Vec<Answer>>,
}

impl Burst {
    /// How many submissions have been answered so far.
    pub fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }

    /// Makes every worker pause this long before each further submission (zero: full speed).
    pub fn pace(&self, pause: Duration) {
        self.pause_ms
            .store(pause.as_millis() as u64, Ordering::SeqCst);
    }

    pub async fn wait_answered(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.answered() < n {
            assert!(
                Instant::now() < deadline,
                "only {} answers within {within:?}",
                self.answered()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every answer, in submission order, once all are in.
    pub async fn finish(self) -> Vec<Answer> {
        self.task.await.expect("the submissions panicked")
    }
}

/// Where the accepted jobs ended: the last view of every job, and those that never reached a
/// terminal status (lost).
pub struct Ends {
    pub jobs: HashMap<String, Value>,
    pub lost: Vec<String>,
}

impl Ends {
    /// How many jobs ended with each `status/verdict`.
    pub fn verdicts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for job in self.jobs.values().filter(|j| is_terminal(j)) {
            let key = format!(
                "{}/{}",
                job["status"].as_str().unwrap_or("?"),
                job["verdict"].as_str().unwrap_or("?")
            );
            *counts.entry(key).or_default() += 1;
        }
        counts
    }

    pub fn job(&self, id: &str) -> &Value {
        &self.jobs[id]
    }

    /// Every job in `ids` ran to `ok` and printed its marker.
    #[track_caller]
    pub fn assert_ok_with(&self, ids: &[String], markers: &[String]) {
        for (id, marker) in ids.iter().zip(markers) {
            let job = self.job(id);
            assert!(
                ok_with(job, marker),
                "job {id} should print {marker}: {job:#}"
            );
        }
    }

    /// Panics listing the lost jobs as last seen, if any.
    #[track_caller]
    pub fn assert_none_lost(&self) {
        let lost: Vec<String> = self
            .lost
            .iter()
            .map(|id| format!("{id}: {}", self.jobs[id]))
            .collect();
        assert!(
            lost.is_empty(),
            "{} accepted jobs never ended:\n{}",
            lost.len(),
            lost.join("\n")
        );
    }
}

// --- the tally --------------------------------------------------------------------------------------

/// The one line each test prints: what was submitted, what the api accepted or refused, how many
/// accepted jobs reached status `completed`, and how many never reached any terminal status.
pub struct Tally {
    test: &'static str,
    pub submitted: usize,
    pub accepted: usize,
    pub refused: usize,
    pub completed: usize,
    pub lost: usize,
}

impl Tally {
    pub fn new(test: &'static str) -> Self {
        Self {
            test,
            submitted: 0,
            accepted: 0,
            refused: 0,
            completed: 0,
            lost: 0,
        }
    }

    /// Counts HTTP submissions: 200/202 accepted, anything else refused.
    pub fn answers(&mut self, answers: &[Answer]) {
        self.submitted += answers.len();
        let accepted = answers.iter().filter(|a| a.id().is_some()).count();
        self.accepted += accepted;
        self.refused += answers.len() - accepted;
    }

    /// Counts messages published straight to the broker (accepted once confirmed).
    pub fn published(&mut self, n: usize) {
        self.submitted += n;
        self.accepted += n;
    }

    /// Counts where the accepted jobs ended, prints the tally and the verdicts, and fails the
    /// test if any job was lost: the close of every fault test.
    #[track_caller]
    pub fn settle(&mut self, ends: &Ends) {
        self.ends(ends);
        println!("{self}");
        println!("{}: verdicts {:?}", self.test, ends.verdicts());
        ends.assert_none_lost();
    }

    pub fn ends(&mut self, ends: &Ends) {
        self.completed += ends
            .jobs
            .values()
            .filter(|j| j["status"] == "completed")
            .count();
        self.lost += ends.lost.len();
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: submitted {} / accepted {} / refused {} / completed {} / lost {}",
            self.test, self.submitted, self.accepted, self.refused, self.completed, self.lost
        )
    }
}

// --- Redis ----------------------------------------------------------------------------------------

/// Reads the job records and event streams directly: "no job shows two results" is a property of
/// the stream (one `done` entry), which the API does not expose as such.
pub struct Store {
    conn: redis::aio::MultiplexedConnection,
}

impl Store {
    /// `(kind, data)` of every entry of the job's event stream, in order.
    pub async fn events(&mut self, id: &str) -> Vec<(String, String)> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(rce_protocol::redis_keys::events(id))
            .arg("-")
            .arg("+")
            .query_async(&mut self.conn)
            .await
            .expect("XRANGE");
        reply
            .ids
            .iter()
            .map(|entry| {
                (
                    entry.get::<String>("kind").unwrap_or_default(),
                    entry.get::<String>("data").unwrap_or_default(),
                )
            })
            .collect()
    }

    pub async fn done_count(&mut self, id: &str) -> usize {
        let events = self.events(id).await;
        events.iter().filter(|(kind, _)| kind == "done").count()
    }

    /// Asserts every job has exactly one `done` event: no job shows two results, none shows none.
    pub async fn assert_one_done_each(&mut self, ids: &[String]) {
        let mut wrong = Vec::new();
        for id in ids {
            let n = self.done_count(id).await;
            if n != 1 {
                wrong.push(format!("{id}: {n} done events"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// The highest `attempt` of the job's `running` status events (1 when none says).
    pub async fn max_attempt(&mut self, id: &str) -> u64 {
        self.events(id)
            .await
            .iter()
            .filter(|(kind, _)| kind == "status")
            .filter_map(|(_, data)| serde_json::from_str::<Value>(data).ok())
            .filter(|d| d["status"] == "running")
            .map(|d| d["attempt"].as_u64().unwrap_or(1))
            .max()
            .unwrap_or(1)
    }

    /// The recorded result (field `result` of the job's hash), raw.
    pub async fn result(&mut self, id: &str) -> Option<String> {
        redis::cmd("HGET")
            .arg(rce_protocol::redis_keys::job(id))
            .arg(rce_protocol::job_record::field::RESULT)
            .query_async(&mut self.conn)
            .await
            .expect("HGET")
    }
}
