//! The bench's own api and runner: release binaries started as child processes, so the bench
//! knows their pids (CPU and memory are read from /proc) and needs no `make up`. They use a
//! RabbitMQ vhost and a Redis database of their own, recreated empty at every run, so nothing
//! another api or runner on the machine does is measured, and nothing of theirs is touched.
//! Judge mode's test data lives in that Redis database too, and the runner's disk cache of it
//! in `target/bench/file-cache`, emptied at every start.

use anyhow::{bail, Context};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runner id: its warm containers carry the label `rce.runner=bench`.
pub const RUNNER_ID: &str = "bench";
pub const VHOST: &str = "rce-bench";
pub const REDIS_DB: u32 = 14;
/// How long the runner may take to warm its pools (a few containers per language, two cores).
const RUNNER_STARTUP: Duration = Duration::from_secs(240);
const API_STARTUP: Duration = Duration::from_secs(60);
/// How long the children may take to stop after SIGTERM before they are killed: the runner's
/// grace for in-flight jobs, plus removing its containers.
const STOP_PATIENCE: Duration = Duration::from_secs(60);
/// The runner's grace for in-flight jobs at SIGTERM; at the end of a run there are none.
const SHUTDOWN_GRACE_SECS: &str = "10";
/// Job records of a run are only read during that run.
const JOB_TTL_SECS: &str = "3600";

/// Where things are.
pub struct StackPaths {
    pub repo: PathBuf,
    /// Holding `rce-api` and `rce-runner`.
    pub binaries: PathBuf,
    /// Logs go here.
    pub out_dir: PathBuf,
    pub topology: PathBuf,
}

impl StackPaths {
    /// The runner's judge-mode disk cache of test data: emptied before every start, so the
    /// first job reading a file fetches it.
    pub fn file_cache(&self) -> PathBuf {
        self.out_dir.join("file-cache")
    }
}

/// The running api and runner. Stopped with [`ServiceStack::stop`]; dropping it stops them too
/// (on an error or Ctrl-C), so no child outlives the bench and no warm container is left.
pub struct ServiceStack {
    pub api_url: String,
    pub runner_url: String,
    pub api_log: PathBuf,
    pub runner_log: PathBuf,
    api: Option<Child>,
    runner: Option<Child>,
}

/// Runs a command, failing with what it printed.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A fresh, empty vhost (queues of an earlier run would hold its jobs) and Redis database.
pub fn reset_broker_and_store() -> anyhow::Result<()> {
    run("rabbitmqctl", &["delete_vhost", VHOST]).ok(); // absent on a first run
    run("rabbitmqctl", &["add_vhost", VHOST])?;
    run(
        "rabbitmqctl",
        &["set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"],
    )?;
    run("redis-cli", &["-n", &REDIS_DB.to_string(), "flushdb"])?;
    Ok(())
}

/// A local port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The last lines of a log, for an error message.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl ServiceStack {
    /// Starts the runner (serving `languages`) and the api, and waits until the runner's pools
    /// are warm (`/healthz` answers only then) and the api is ready.
    pub async fn start(paths: &StackPaths, languages: &[String]) -> anyhow::Result<Self> {
        let api_addr = format!("127.0.0.1:{}", free_port()?);
        let runner_addr = format!("127.0.0.1:{}", free_port()?);
        let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}");
        let redis = format!("redis://127.0.0.1:6379/{REDIS_DB}");
        let topology = paths.topology.to_string_lossy().into_owned();
        let file_cache = paths.file_cache();
        match std::fs::remove_dir_all(&file_cache) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("emptying {}", file_cache.display()))
            }
            _ => {}
        }
        let file_cache = file_cache.to_string_lossy().into_owned();
        let common = [
            ("RCE_AMQP_URL", amqp.as_str()),
            ("RCE_REDIS_URL", redis.as_str()),
            ("RCE_TOPOLOGY", topology.as_str()),
            // Test data in the bench's own Redis database, flushed at every run.
            ("RCE_FILE_STORE", "redis"),
        ];
        let api_log = paths.out_dir.join("api.log");
        let runner_log = paths.out_dir.join("runner.log");
        let languages = languages.join(",");
        let mut stack = Self {
            api_url: format!("http://{api_addr}"),
            runner_url: format!("http://{runner_addr}"),
            api_log: api_log.clone(),
            runner_log: runner_log.clone(),
            api: None,
            runner: None,
        };
        stack.runner = Some(spawn(
            paths,
            "rce-runner",
            &runner_log,
            &[
                ("RCE_RUNNER_ID", RUNNER_ID),
                // Its own uid blocks: a `make up` runner (index 0) may share the engine.
                ("RCE_RUNNER_INDEX", "2"),
                ("RCE_RUNNER_LANGUAGES", &languages),
                ("RCE_RUNNER_METRICS_ADDR", &runner_addr),
                ("RCE_SHUTDOWN_GRACE_SECS", SHUTDOWN_GRACE_SECS),
                ("RCE_FILE_CACHE_DIR", &file_cache),
            ],
            &common,
        )?);
        stack.api = Some(spawn(
            paths,
            "rce-api",
            &api_log,
            &[
                ("RCE_API_ADDR", &api_addr),
                ("RCE_JOB_TTL_SECS", JOB_TTL_SECS),
            ],
            &common,
        )?);
        let url = format!("{}/healthz", stack.runner_url);
        stack.wait_ready("runner", &url, RUNNER_STARTUP).await?;
        let url = format!("{}/readyz", stack.api_url);
        stack.wait_ready("api", &url, API_STARTUP).await?;
        Ok(stack)
    }

    pub fn api_pid(&self) -> u32 {
        self.api.as_ref().map_or(0, Child::id)
    }

    pub fn runner_pid(&self) -> u32 {
        self.runner.as_ref().map_or(0, Child::id)
    }

    /// Polls `url` until it answers 200, failing early (with the log's tail) if a child exits.
    async fn wait_ready(&mut self, what: &str, url: &str, within: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + within;
        loop {
            if let Ok(r) = client.get(url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            for (name, child, log) in [
                ("runner", &mut self.runner, &self.runner_log),
                ("api", &mut self.api, &self.api_log),
            ] {
                if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    bail!(
                        "the {name} exited ({status}) before it was ready; its log, {}, ends:\n{}",
                        log.display(),
                        tail(log, 20)
                    );
                }
            }
            if Instant::now() > deadline {
                let log = if what == "api" {
                    &self.api_log
                } else {
                    &self.runner_log
                };
                bail!(
                    "the {what} was not ready at {url} within {within:?}; its log, {}, ends:\n{}",
                    log.display(),
                    tail(log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// SIGTERM, runner first (it drains and removes its containers), then the api; both waited for.
    pub async fn stop(mut self) {
        let (runner, api) = (self.runner.take(), self.api.take());
        tokio::task::spawn_blocking(move || {
            terminate("runner", runner);
            terminate("api", api);
        })
        .await
        .ok();
    }
}

impl Drop for ServiceStack {
    fn drop(&mut self) {
        terminate("runner", self.runner.take());
        terminate("api", self.api.take());
    }
}

fn spawn(
    paths: &StackPaths,
    binary: &str,
    log: &Path,
    env: &[(&str, &str)],
    common: &[(&str, &str)],
) -> anyhow::Result<Child> {
    let program = paths.binaries.join(binary);
    if !program.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p rce-api -p rce-runner` (bench/run.sh does)",
            program.display()
        );
    }
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    Command::new(&program)
        .current_dir(&paths.repo)
        .envs(common.iter().copied())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

/// SIGTERM (through `kill`, as the fault tests do: no unsafe FFI), then waits; SIGKILL if it
/// does not stop in time.
fn terminate(name: &str, child: Option<Child>) {
    let Some(mut child) = child else { return };
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let pid = child.id().to_string();
    let _ = Command::new("kill")
        .args(["-s", "TERM", &pid])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + STOP_PATIENCE;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "the {name} (pid {pid}) did not stop within {STOP_PATIENCE:?} of SIGTERM: killing it"
    );
    let _ = child.kill();
    let _ = child.wait();
}
