//! `spawn_stack()`: the api and a runner, started once for the whole test binary and shared by
//! every test. Each test uses its own job ids, so tests run in parallel.

use rce_tests::{free_port, repo_root};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The RabbitMQ vhost the tests own: recreated empty at each run, so a `make up` service on the
/// default vhost neither steals test jobs nor sees them.
pub const VHOST: &str = "rce-test";
/// Redis database for test records, apart from `make up`'s database 0.
pub const REDIS_DB: u32 = 15;
/// Runner id of the test runner: its containers carry this label, and `make test` removes them.
pub const RUNNER_ID: &str = "it";

pub struct TestStack {
    pub api: String,
    pub runner_metrics: String,
}

static STACK: OnceLock<TestStack> = OnceLock::new();

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl must be installed: run the tests with `make test`");
    assert!(
        out.status.success() || args[0] == "delete_vhost",
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Languages that exist only in the tests' topology: a copy of a real language with a pool of
/// one container, so every job in it runs in the same container. Cross-job tests use them to
/// know that job B ran where job A did.
pub const SOLO: [(&str, &str); 2] = [("python_solo", "python"), ("javascript_solo", "javascript")];

/// Languages that get an exec-mode copy (`<id>_exec`) in the tests' topology, so the sandbox
/// tests run against both ways a job reaches its container (see [`Mode`]).
pub const EXEC_COPIES: [&str; 7] = [
    "python",
    "javascript",
    "bash",
    "c",
    "cpp",
    "python_solo",
    "javascript_solo",
];

/// How a job reaches its warm container (topology.yaml `exec_mode`). Every isolation guarantee
/// must hold in both, so the sandbox tests run once per mode (see [`both_modes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The default: the shim is the container's main process and forks each job.
    Agent,
    /// One `docker exec` of the shim per job.
    Exec,
}

impl Mode {
    /// The tests' language for `base` in this mode: `base` itself (agent mode, the topology's
    /// default) or its exec-mode copy.
    pub fn lang(self, base: &str) -> String {
        match self {
            Self::Agent => base.to_string(),
            Self::Exec => format!("{base}_exec"),
        }
    }
}

/// The language a test language copies (`python_exec` -> `python`), for per-language sources.
pub fn base_language(language: &str) -> &str {
    language.strip_suffix("_exec").unwrap_or(language)
}

/// Declares an async test that takes a [`Mode`] once per mode: a module named after the test
/// with the tests `agent` and `exec` (`hostile::fork_bomb::exec`).
macro_rules! both_modes {
    ($(#[doc = $doc:literal])* async fn $name:ident($mode:ident) $body:block) => {
        $(#[doc = $doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($mode: $crate::helpers::Mode) $body

            #[tokio::test(flavor = "multi_thread")]
            async fn agent() {
                body($crate::helpers::Mode::Agent).await
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn exec() {
                body($crate::helpers::Mode::Exec).await
            }
        }
    };
}
pub(crate) use both_modes;

/// A language of the tests' topology that no runner serves, with a job queue of
/// [`UNSERVED_QUEUE_LENGTH`]: what a full queue does to submissions, without racing a consumer.
pub const UNSERVED: &str = "python_unserved";
pub const UNSERVED_QUEUE_LENGTH: u32 = 3;
/// Another language no runner serves, with the default queue length: jobs that stay queued
/// until cancelled (the webhook tests'), apart from the backpressure test's full queue.
pub const IDLE: &str = "python_idle";

/// The repository's topology.yaml plus the [`SOLO`], [`EXEC_COPIES`] and [`UNSERVED`] languages
/// and the pool tests' own ([`crate::pools::LANGUAGES`]), written to a file of this run.
fn test_topology() -> String {
    let text = std::fs::read_to_string(repo_root().join("topology.yaml")).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let languages = doc["languages"].as_mapping_mut().unwrap();
    // A copy answers to no Judge0 id or Piston alias: those name the original only.
    let copy = |languages: &serde_yaml::Mapping, of: &str| {
        let mut spec = languages[of].clone();
        if let Some(m) = spec.as_mapping_mut() {
            m.remove("compat");
        }
        spec
    };
    for (solo, of) in SOLO {
        let mut spec = copy(languages, of);
        spec["pool"] = 1.into();
        languages.insert(solo.into(), spec);
    }
    for of in EXEC_COPIES {
        let mut spec = copy(languages, of);
        spec["exec_mode"] = "exec".into();
        languages.insert(format!("{of}_exec").into(), spec);
    }
    for (id, of, pool) in crate::pools::LANGUAGES {
        let mut spec = copy(languages, of);
        spec["pool"] = pool.into();
        languages.insert(id.into(), spec);
    }
    let mut unserved = copy(languages, "python");
    unserved["queue_max_length"] = UNSERVED_QUEUE_LENGTH.into();
    languages.insert(UNSERVED.into(), unserved);
    let idle = copy(languages, "python");
    languages.insert(IDLE.into(), idle);
    let path = std::env::temp_dir().join(format!("rce-it-topology-{}.yaml", std::process::id()));
    std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
    path.display().to_string()
}

/// The configuration of a test api on `port`, on the tests' vhost and Redis database.
pub fn api_config(port: u16, topology: &str) -> rce_api::config::ApiConfig {
    rce_api::config::ApiConfig {
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
        amqp_url: format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}"),
        redis_url: format!("redis://127.0.0.1:6379/{REDIS_DB}"),
        topology_path: topology.to_string(),
        job_ttl: Duration::from_secs(3600),
        max_body_bytes: 2 << 20,
        max_file_bytes: 64 << 20,
        file_ttl: Duration::from_secs(3600),
        file_store: rce_files::StoreConfig::Redis,
        wait_margin: Duration::from_secs(60),
        heartbeat: Duration::from_secs(1),
        stuck_margin: Duration::from_secs(60),
        webhooks: rce_api::webhooks::WebhookConfig {
            secret: Some(WEBHOOK_SECRET.into()),
            // The tests' receivers listen on 127.0.0.1, and nothing else may be reached.
            allow_nets: rce_api::webhooks::destination::parse_nets("127.0.0.1/32").unwrap(),
            timeout: Duration::from_secs(2),
            backoff: Duration::from_millis(100),
            retry_for: Duration::from_secs(20),
            concurrency: 8,
        },
        judge0_authz_tokens: vec![JUDGE0_AUTHZ.into()],
        judge0_authn_tokens: Vec::new(),
    }
}

/// The test api's Judge0 authorization token (`X-Auth-User`).
pub const JUDGE0_AUTHZ: &str = "test-judge0-authz";

/// The test api's webhook signing secret.
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";

/// A second api, on its own port, that stops when `stop` resolves: for shutdown tests. The
/// shared stack must be up (it owns the vhost). Returns its base URL and its run task.
pub fn second_api(
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> (String, tokio::task::JoinHandle<anyhow::Result<()>>) {
    second_api_with(stop, |_| {})
}

/// [`second_api`] with its configuration changed by `adjust` first.
pub fn second_api_with(
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    adjust: impl FnOnce(&mut rce_api::config::ApiConfig),
) -> (String, tokio::task::JoinHandle<anyhow::Result<()>>) {
    stack();
    let port = free_port();
    let topology = TOPOLOGY.get().expect("written by stack()").clone();
    let mut config = api_config(port, &topology);
    adjust(&mut config);
    let task = tokio::spawn(rce_api::app::run(config, stop));
    (format!("http://127.0.0.1:{port}"), task)
}

static TOPOLOGY: OnceLock<String> = OnceLock::new();

/// Every language of the test topology but [`UNSERVED`] and [`IDLE`].
fn served_languages(topology: &str) -> Vec<String> {
    let t = rce_protocol::topology::Topology::load(std::path::Path::new(topology)).unwrap();
    t.languages
        .keys()
        .filter(|id| *id != UNSERVED && *id != IDLE)
        .cloned()
        .collect()
}

/// Starts (once) and returns the shared stack; waits until the api is ready and the runner's
/// pools are warm.
pub fn stack() -> &'static TestStack {
    STACK.get_or_init(|| {
        rabbitmqctl(&["delete_vhost", VHOST]);
        rabbitmqctl(&["add_vhost", VHOST]);
        rabbitmqctl(&["set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"]);
        let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{VHOST}");
        let redis = format!("redis://127.0.0.1:6379/{REDIS_DB}");
        let topology = TOPOLOGY.get_or_init(test_topology).clone();
        let (api_port, metrics_port) = (free_port(), free_port());
        let api_config = api_config(api_port, &topology);
        let runner_config = rce_runner::config::RunnerConfig {
            amqp_url: amqp,
            redis_url: redis,
            languages: served_languages(&topology),
            topology_path: topology,
            runner_id: RUNNER_ID.into(),
            metrics_addr: format!("127.0.0.1:{metrics_port}").parse().unwrap(),
            shutdown_grace: Duration::from_secs(5),
            // Not 0, the default: a `make up` runner on the same engine keeps its own uids.
            runner_index: 1,
            uid_blocks: rce_runner::config::DEFAULT_UID_BLOCKS,
            cgroup_root: "/sys/fs/cgroup".into(),
            // Emptied for each run of the tests: a blob corrupted in the store must not be
            // hidden by a good copy cached by an earlier run.
            file_cache_dir: fresh_dir("it-file-cache"),
            file_cache_bytes: 256 << 20,
            file_store: rce_files::StoreConfig::Redis,
        };
        // A runtime of its own on a thread that lives as long as the test binary: each
        // #[tokio::test] has a short-lived runtime that must not own the stack.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let api = tokio::spawn(rce_api::app::run(api_config, std::future::pending()));
                let runner =
                    tokio::spawn(rce_runner::app::run(runner_config, std::future::pending()));
                tokio::select! {
                    r = api => panic!("the api stopped: {r:?}"),
                    r = runner => panic!("the runner stopped: {r:?}"),
                }
            });
        });
        let stack = TestStack {
            api: format!("http://127.0.0.1:{api_port}"),
            runner_metrics: format!("http://127.0.0.1:{metrics_port}"),
        };
        wait_ready(&format!("{}/readyz", stack.api));
        wait_ready(&format!("{}/healthz", stack.runner_metrics));
        stack
    })
}

/// Blocks until `url` answers 200; the runner only listens once its pools are warm.
fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if http_get_ok(url) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not become ready within 180 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A plain blocking HTTP/1.0 GET, so readiness can be polled outside any async runtime.
fn http_get_ok(url: &str) -> bool {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut stream) = std::net::TcpStream::connect(host) else {
        return false;
    };
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
    if write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

/// A client bound to the calling test's runtime.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
}

pub fn app() -> TestApp {
    let stack = stack();
    TestApp {
        base: stack.api.clone(),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
    }
}

impl TestApp {
    /// POST /v1/jobs with an arbitrary body; returns status and JSON.
    pub async fn post_jobs(&self, query: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/jobs{query}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("api reachable");
        let status = resp.status().as_u16();
        let json = resp.json().await.unwrap_or(Value::Null);
        (status, json)
    }

    /// POST of `body` as JSON to `path` (any surface); returns status and JSON (or the text,
    /// as a JSON string, when the answer is not JSON).
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send_json(reqwest::Method::POST, path, Some(body))
            .await
    }

    /// GET of `path`; returns status and JSON (or the text, as a JSON string).
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        self.send_json(reqwest::Method::GET, path, None).await
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        let resp = request.send().await.expect("api reachable");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, json)
    }

    /// Submits and waits; asserts the job finished (200).
    pub async fn run(&self, job: Value) -> Value {
        let (status, body) = self.post_jobs("?wait=true", job.to_string()).await;
        assert_eq!(status, 200, "job did not finish: {body}");
        body
    }

    /// Runs `source` in `language` with `stdin`.
    pub async fn run_source(&self, language: &str, source: &str, stdin: &str) -> Value {
        self.run(json!({"language": language, "source": source, "stdin": stdin}))
            .await
    }

    /// Language `id` as `GET /v1/languages` lists it.
    pub async fn language(&self, id: &str) -> Value {
        let list: Value = self
            .http
            .get(format!("{}/v1/languages", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not in /v1/languages: {list}"))
            .clone()
    }

    pub async fn get_job(&self, id: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(format!("{}/v1/jobs/{id}", self.base))
            .send()
            .await
            .expect("api reachable");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// Asserts a job's verdict, printing the whole job when it is not the expected one.
#[track_caller]
pub fn assert_verdict(job: &Value, verdict: &str) {
    assert_eq!(job["verdict"], verdict, "unexpected verdict; job: {job:#}");
}

/// An empty directory `name` under cargo's scratch space for tests.
pub fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
