//! The burst: many submissions without `wait`, as fast as the api admits them, then the wait
//! until every admitted job has ended. It shows the admission rate, what the api answers when
//! the queue is full (503, never retried here), how long the backlog takes to drain, that no
//! admitted job is lost, and how much memory api and runner need while it lasts.

use crate::proc_stats::{process_status_kb, CpuMeter};
use crate::project::{check_job, is_terminal, job_request};
use crate::results::BurstResult;
use crate::stats::LatencySummary;
use futures_util::future::join_all;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Jobs read at once while draining: the front of the backlog, in submission order.
const POLL_CHUNK: usize = 16;
/// Pause between drain rounds, once the round reached a job still queued or running.
const POLL_PAUSE: Duration = Duration::from_millis(200);
/// How often api's and runner's resident memory is sampled.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// What to submit and how.
pub struct BurstSpec {
    pub api_url: String,
    pub language: String,
    pub source: String,
    pub expected: &'static str,
    pub submissions: usize,
    pub in_flight: usize,
    pub drain_timeout: Duration,
    pub queue_max_length: u32,
}

/// The pids whose memory is watched.
pub struct Watched {
    pub api: u32,
    pub runner: u32,
}

/// What the submitters saw.
#[derive(Default)]
struct Admission {
    /// (submission index, job id) of every 202.
    accepted: Vec<(usize, String)>,
    latencies_ms: Vec<f64>,
    rejected_503: usize,
    other: BTreeMap<String, usize>,
}

pub async fn run(
    client: reqwest::Client,
    spec: BurstSpec,
    cpu: &CpuMeter,
    pids: Watched,
) -> BurstResult {
    let (stop_sampling, stopped) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(sample_peak_rss(pids.api, pids.runner, stopped));
    let cpu_before = cpu.snapshot();
    let started_wall = chrono::Utc::now();
    let started = Instant::now();

    let admission = submit_all(&client, &spec).await;
    let submit_secs = started.elapsed().as_secs_f64();
    let accepted = admission.accepted.len();
    println!(
        "  submitted {} in {submit_secs:.1} s: {accepted} accepted, {} × 503, other {:?}; draining...",
        spec.submissions, admission.rejected_503, admission.other
    );

    let drain = drain(&client, &spec, admission.accepted, started).await;
    let spent = cpu.since(&cpu_before);
    stop_sampling.send(()).ok();
    let (api_peak, runner_peak) = sampler.await.unwrap_or((0, 0));
    let drain_by_finished_at = drain
        .last_finished_at
        .map(|t| (t - started_wall).num_milliseconds() as f64 / 1000.0);
    BurstResult {
        language: spec.language.clone(),
        submissions: spec.submissions,
        in_flight: spec.in_flight,
        accepted,
        rejected_503: admission.rejected_503,
        other_failures: admission.other,
        submit_secs,
        admission_per_sec: accepted as f64 / submit_secs.max(1e-9),
        submit_latency: LatencySummary::of(&admission.latencies_ms),
        drain_secs: drain.secs,
        drain_secs_by_finished_at: drain_by_finished_at,
        completed_per_sec: (accepted - drain.lost) as f64 / drain.secs.max(1e-9),
        lost: drain.lost,
        not_ok: drain.not_ok,
        api_peak_rss_kb: api_peak,
        runner_peak_rss_kb: runner_peak,
        api_hwm_kb: process_status_kb(pids.api, "VmHWM").unwrap_or(0),
        runner_hwm_kb: process_status_kb(pids.runner, "VmHWM").unwrap_or(0),
        cpu_per_job: spent.per_job(accepted),
        queue_max_length: spec.queue_max_length,
    }
}

/// `in_flight` submitters, each sending its next job as soon as the previous one was answered.
async fn submit_all(client: &reqwest::Client, spec: &BurstSpec) -> Admission {
    let next = Arc::new(AtomicUsize::new(0));
    let admission = Arc::new(Mutex::new(Admission::default()));
    let url = Arc::new(format!("{}/v1/jobs", spec.api_url));
    let body = Arc::new(job_request(&spec.language, &spec.source));
    let mut submitters = tokio::task::JoinSet::new();
    for _ in 0..spec.in_flight.max(1) {
        let (client, next, admission, url, body) = (
            client.clone(),
            next.clone(),
            admission.clone(),
            url.clone(),
            body.clone(),
        );
        let total = spec.submissions;
        submitters.spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                let t = Instant::now();
                let answer = client.post(url.as_str()).json(&*body).send().await;
                let (status, id) = match answer {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let job: Option<Value> = r.json().await.ok();
                        let id = job.and_then(|j| j["id"].as_str().map(String::from));
                        (Some(status), id)
                    }
                    Err(_) => (None, None),
                };
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                let mut a = admission.lock().expect("admission lock");
                a.latencies_ms.push(ms);
                match (status, id) {
                    (Some(202), Some(id)) => a.accepted.push((index, id)),
                    (Some(503), _) => a.rejected_503 += 1,
                    (Some(s), _) => *a.other.entry(s.to_string()).or_default() += 1,
                    (None, _) => *a.other.entry("error".into()).or_default() += 1,
                }
            }
        });
    }
    while submitters.join_next().await.is_some() {}
    let mut admission = std::mem::take(&mut *admission.lock().expect("admission lock"));
    admission.accepted.sort();
    admission
}

struct Drain {
    secs: f64,
    lost: usize,
    not_ok: BTreeMap<String, usize>,
    last_finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Walks the accepted jobs in submission order, reading only those not yet seen ended: each
/// round reads chunk after chunk from the front and stops at the first chunk with a job still
/// queued or running, so a job is read about once after it ended, and at most a chunk of
/// unfinished ones is read per round.
async fn drain(
    client: &reqwest::Client,
    spec: &BurstSpec,
    accepted: Vec<(usize, String)>,
    started: Instant,
) -> Drain {
    let deadline = started + spec.drain_timeout;
    let mut pending: Vec<String> = accepted.into_iter().map(|(_, id)| id).collect();
    let mut not_ok: BTreeMap<String, usize> = BTreeMap::new();
    let mut missing = 0;
    let mut last_seen = started;
    let mut last_finished_at = None;
    let mut reported = Instant::now();
    while !pending.is_empty() && Instant::now() < deadline {
        let mut done = 0; // how many from the front of `pending` ended this round
        let mut still_running = Vec::new();
        while done < pending.len() {
            let chunk = &pending[done..(done + POLL_CHUNK).min(pending.len())];
            let states = join_all(chunk.iter().map(|id| read_job(client, &spec.api_url, id))).await;
            let mut open = false;
            for (id, state) in chunk.iter().zip(states) {
                match state {
                    JobState::Ended(job) => {
                        last_seen = Instant::now();
                        if let Some(t) = job["finished_at"]
                            .as_str()
                            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                        {
                            let t = t.with_timezone(&chrono::Utc);
                            last_finished_at = last_finished_at.max(Some(t));
                        }
                        if check_job(&job, spec.expected).is_err() {
                            let verdict = job["verdict"].as_str().unwrap_or("wrong output");
                            *not_ok.entry(verdict.to_string()).or_default() += 1;
                        }
                    }
                    JobState::Missing => missing += 1,
                    JobState::Open => {
                        open = true;
                        still_running.push(id.clone());
                    }
                }
            }
            done += chunk.len();
            if open {
                break;
            }
        }
        pending = still_running
            .into_iter()
            .chain(pending.drain(done..))
            .collect();
        if reported.elapsed() > Duration::from_secs(10) {
            println!(
                "  {} of the accepted jobs not ended yet after {:.0} s",
                pending.len(),
                started.elapsed().as_secs_f64()
            );
            reported = Instant::now();
        }
        if !pending.is_empty() {
            tokio::time::sleep(POLL_PAUSE).await;
        }
    }
    Drain {
        secs: last_seen.duration_since(started).as_secs_f64(),
        lost: pending.len() + missing,
        not_ok,
        last_finished_at,
    }
}

enum JobState {
    Ended(Value),
    Open,
    /// 404: the record is gone; it will never end.
    Missing,
}

async fn read_job(client: &reqwest::Client, api: &str, id: &str) -> JobState {
    let Ok(r) = client.get(format!("{api}/v1/jobs/{id}")).send().await else {
        return JobState::Open;
    };
    if r.status() == reqwest::StatusCode::NOT_FOUND {
        return JobState::Missing;
    }
    match r.json::<Value>().await {
        Ok(job) if job["status"].as_str().is_some_and(is_terminal) => JobState::Ended(job),
        _ => JobState::Open,
    }
}

/// The largest `VmRSS` of api and runner, sampled until `stop` fires.
async fn sample_peak_rss(
    api: u32,
    runner: u32,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> (u64, u64) {
    let (mut api_peak, mut runner_peak) = (0, 0);
    let mut every = tokio::time::interval(RSS_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {
                api_peak = api_peak.max(process_status_kb(api, "VmRSS").unwrap_or(0));
                runner_peak = runner_peak.max(process_status_kb(runner, "VmRSS").unwrap_or(0));
            }
            _ = &mut stop => return (api_peak, runner_peak),
        }
    }
}
