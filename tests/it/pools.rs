//! The runner's pools as a whole: no two containers share a job uid (the kernel's per-uid
//! budgets, `RLIMIT_NPROC` first, would be shared between their jobs), whatever their language,
//! and a pool gets back to its size after every kind of retirement (`unclean`, `failed`,
//! `recycled`), as the runner's `rce_pool_size` gauge shows.
//!
//! Each test uses languages of its own ([`LANGUAGES`]), so the containers it counts, kills or
//! retires are never another test's.

use crate::helpers::{app, assert_verdict, stack, TestApp, RUNNER_ID};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Test-only languages (id, the language it copies, pool size), added to the tests' topology.
/// The `_uids` ones have one container each and no other jobs: their first jobs are the first
/// of their containers, where the per-pool slot numbering of old gave both the same uid.
pub const LANGUAGES: [(&str, &str, usize); 5] = [
    ("python_uids", "python", 1),
    ("bash_uids", "bash", 1),
    ("python_unclean", "python", 2),
    ("python_killed", "python", 2),
    ("bash_recycled", "bash", 2),
];

/// How long a pool may take to be back at its size after a retirement.
const REFILL_WITHIN: Duration = Duration::from_secs(20);

/// The job uid blocks: `uid_base` and `uid_span` of the repository's topology (the tests' copy
/// has the same sandbox).
fn uid_block(uid: u64) -> u64 {
    let t = rce_protocol::topology::Topology::from_source_tree().unwrap();
    (uid - u64::from(t.sandbox.uid_base)) / u64::from(t.sandbox.uid_span)
}

/// The runner's metrics, as Prometheus text.
async fn runner_metrics(app: &TestApp) -> String {
    app.http
        .get(format!("{}/metrics", stack().runner_metrics))
        .send()
        .await
        .expect("runner metrics reachable")
        .text()
        .await
        .unwrap()
}

/// The value of the runner's metric `name` with exactly these `labels`, if it has one.
async fn runner_metric(app: &TestApp, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric_in(&runner_metrics(app).await, name, labels)
}

/// The value of metric `name` with exactly these `labels` in Prometheus text `text`.
fn metric_in(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    wanted.sort();
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            return None;
        }
        let mut have: Vec<String> = rest
            .trim_end_matches('}')
            .split(',')
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        have.sort();
        (have == wanted).then(|| value.parse().ok()).flatten()
    })
}

async fn retired(app: &TestApp, language: &str, reason: &str) -> f64 {
    runner_metric(
        app,
        "rce_pool_containers_retired_total",
        &[("language", language), ("reason", reason)],
    )
    .await
    .unwrap_or(0.0)
}

/// Waits until every container of `language`'s pool is idle: its last job's container has
/// settled (back in the pool, or retired).
async fn wait_until_idle(app: &TestApp, language: &str) {
    let deadline = Instant::now() + REFILL_WITHIN;
    loop {
        let text = runner_metrics(app).await;
        let size = metric_in(&text, "rce_pool_size", &[("language", language)]);
        let idle = metric_in(
            &text,
            "rce_pool_containers",
            &[("language", language), ("state", "idle")],
        );
        if size.is_some() && size == idle {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{language}: {idle:?} of {size:?} idle"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn pool_size(app: &TestApp, language: &str) -> Option<f64> {
    runner_metric(app, "rce_pool_size", &[("language", language)]).await
}

/// Waits until `rce_pool_containers_retired_total{language, reason}` passes `before`.
async fn wait_for_retirement(app: &TestApp, language: &str, reason: &str, before: f64) {
    let deadline = Instant::now() + REFILL_WITHIN;
    while retired(app, language, reason).await <= before {
        assert!(
            Instant::now() < deadline,
            "no {reason} retirement in {language} within {REFILL_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that `language`'s pool is (back) at its configured size within [`REFILL_WITHIN`].
async fn assert_pool_refills(app: &TestApp, language: &str) {
    let configured = runner_metric(app, "rce_pool_configured_size", &[("language", language)])
        .await
        .expect("the runner reports the configured size of every pool");
    let deadline = Instant::now() + REFILL_WITHIN;
    loop {
        let size = pool_size(app, language).await;
        if size == Some(configured) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{language}: pool size {size:?}, configured {configured}, {REFILL_WITHIN:?} after a retirement"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits a job without waiting; returns its id.
async fn submit(app: &TestApp, job: Value) -> String {
    let (status, body) = app.post_jobs("", job.to_string()).await;
    assert_eq!(status, 202, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Waits until job `id` has a verdict and returns it.
async fn finished(app: &TestApp, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, job) = app.get_job(id).await;
        assert_eq!(status, 200, "{job}");
        if !job["verdict"].is_null() {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not finish: {job:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Ids of the test runner's containers of `language`.
fn containers_of(language: &str) -> Vec<String> {
    let out = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=rce.runner={RUNNER_ID}"),
            "--filter",
            &format!("label=rce.language={language}"),
        ])
        .output()
        .expect("the docker CLI must be installed");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// The command lines of the processes in container `id`.
fn processes_of(id: &str) -> String {
    let out = std::process::Command::new("docker")
        .args(["top", id, "-eo", "pid,args"])
        .output()
        .expect("the docker CLI must be installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stdout_of(job: &Value) -> String {
    job["run"]["stdout"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_jobs_of_two_languages_run_under_uids_of_different_blocks() {
    let app = app();
    // Two at once per language: both containers of each pool are busy at the same moment.
    let python = "import os, time\nprint(os.getuid())\ntime.sleep(1.5)";
    let bash = "id -u\nsleep 1.5";
    let jobs = [
        ("python", python),
        ("python", python),
        ("bash", bash),
        ("bash", bash),
    ]
    .map(|(language, source)| app.run_source(language, source, ""));
    let done = futures_util::future::join_all(jobs).await;
    let mut blocks: [Vec<u64>; 2] = Default::default();
    for (i, job) in done.iter().enumerate() {
        assert_verdict(job, "ok");
        let uid: u64 = stdout_of(job).trim().parse().expect("a uid");
        blocks[i / 2].push(uid_block(uid));
    }
    let shared: Vec<_> = blocks[0].iter().filter(|b| blocks[1].contains(b)).collect();
    assert!(
        shared.is_empty(),
        "python and bash jobs ran in the same uid blocks {shared:?} (python {:?}, bash {:?})",
        blocks[0],
        blocks[1]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thread_hoarder_does_not_stop_another_languages_job_from_forking() {
    let app = app();
    // 240 threads of one uid, alive for 6 s: far past the bash job's RLIMIT_NPROC (its
    // `processes` limit, counted per uid across the whole kernel) had they shared a uid.
    let hoarder = "import os, threading, time\n\
        stop = threading.Event()\n\
        threads = [threading.Thread(target=stop.wait) for _ in range(240)]\n\
        for t in threads: t.start()\n\
        print(os.getuid(), threading.active_count(), flush=True)\n\
        time.sleep(6)\n\
        stop.set()";
    let hoarder = app.run(json!({
        "language": "python_uids", "source": hoarder,
        "limits": {"processes": 256, "wall_time_ms": 10000},
    }));
    let forker = async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let source = "id -u\n\
            for i in $(seq 50); do ( exit 0 ) & done\n\
            wait && echo forked 50";
        app.run(json!({"language": "bash_uids", "source": source}))
            .await
    };
    let (hoarder, forker) = tokio::join!(hoarder, forker);
    assert_verdict(&hoarder, "ok");
    assert_verdict(&forker, "ok");
    let hoarder_out = stdout_of(&hoarder);
    let forker_out = stdout_of(&forker);
    let hoarder_uid = hoarder_out.split_whitespace().next().unwrap();
    assert!(hoarder_out.contains(" 241"), "{hoarder:#}");
    let mut forker_lines = forker_out.lines();
    assert_ne!(forker_lines.next(), Some(hoarder_uid), "{forker:#}");
    assert_eq!(forker_lines.next(), Some("forked 50"), "{forker:#}");
}

/// A job that leaves a memfd of 32 MiB and both ends of a socket pair in flight in an
/// SCM_RIGHTS cycle (each end queued on the other): no process holds them, the cleanup has no
/// file to remove, and the kernel keeps them (and their memory) until its socket garbage
/// collector runs. The shim's check after the job finds the memory and sockets still there and
/// reports the container unclean.
const LEAVES_AN_SCM_RIGHTS_CYCLE: &str = "import os, socket\n\
    fd = os.memfd_create('held')\n\
    os.write(fd, b'x' * (32 << 20))\n\
    a, b = socket.socketpair()\n\
    socket.send_fds(a, [b'm'], [fd, a.fileno()])\n\
    socket.send_fds(b, [b'm'], [b.fileno()])\n\
    print('sent')";

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_is_refilled_after_an_unclean_retirement() {
    let app = app();
    let language = "python_unclean";
    assert_pool_refills(&app, language).await;
    let before = retired(&app, language, "unclean").await;
    let job = app
        .run_source(language, LEAVES_AN_SCM_RIGHTS_CYCLE, "")
        .await;
    assert_verdict(&job, "ok");
    wait_for_retirement(&app, language, "unclean", before).await;
    assert_pool_refills(&app, language).await;
    // And the refilled pool runs jobs.
    let job = app.run_source(language, "print('after')", "").await;
    assert_eq!(stdout_of(&job), "after\n", "{job:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_is_refilled_after_a_container_is_killed_under_its_job() {
    let app = app();
    let language = "python_killed";
    assert_pool_refills(&app, language).await;
    let before = retired(&app, language, "failed").await;
    // The job is handed back when its container dies, and runs again.
    let source = "import time\ntime.sleep(3)\nprint('slept')";
    let id = submit(&app, json!({"language": language, "source": source})).await;
    // Kill the container running it, while the pool's other container idles: the retirement
    // must bring a new container, not just leave the idle one to serve.
    let deadline = Instant::now() + Duration::from_secs(30);
    let victim = loop {
        if let Some(busy) = containers_of(language)
            .into_iter()
            .find(|c| processes_of(c).contains("main.py"))
        {
            break busy;
        }
        assert!(Instant::now() < deadline, "job {id} never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let killed = std::process::Command::new("docker")
        .args(["kill", &victim])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{killed:?}");
    wait_for_retirement(&app, language, "failed", before).await;
    assert_pool_refills(&app, language).await;
    let job = finished(&app, &id).await;
    assert_verdict(&job, "ok");
    assert_eq!(stdout_of(&job), "slept\n", "{job:#}");
    let now = containers_of(language);
    assert!(
        now.len() == 2 && !now.contains(&victim),
        "running after the kill of {victim}: {now:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_is_refilled_after_containers_ran_their_share_of_jobs() {
    let app = app();
    let language = "bash_recycled";
    let max_jobs = rce_protocol::topology::Topology::from_source_tree()
        .unwrap()
        .sandbox
        .max_jobs_per_container;
    assert_pool_refills(&app, language).await;
    let before = retired(&app, language, "recycled").await;
    // One at a time, each once the last one's container has settled: the two containers take
    // turns, one of them reaches its share after at most twice `max_jobs_per_container` jobs,
    // and the other one idles when it does (so the retirement must bring a new container, not
    // leave the idle one to serve alone).
    let mut jobs_run = 0;
    while retired(&app, language, "recycled").await <= before {
        assert!(
            jobs_run <= 2 * max_jobs + 10,
            "{jobs_run} jobs and no container was recycled"
        );
        let job = app.run_source(language, "echo $((6 * 7))", "").await;
        assert_eq!(stdout_of(&job), "42\n", "{job:#}");
        jobs_run += 1;
        wait_until_idle(&app, language).await;
    }
    assert_pool_refills(&app, language).await;
}
