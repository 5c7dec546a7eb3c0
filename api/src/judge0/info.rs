//! Judge0's informational endpoints, answered from our real state: languages under their Judge0
//! ids (topology.yaml `compat.judge0_ids`), the fourteen statuses, `/about` and `/version`
//! (Judge0 1.13.1, the version its clients know, and ours beside it), `/config_info` with our
//! limits in Judge0's keys and units, `/system_info` and `/workers`.

use super::request::{
    DEFAULT_CPU_EXTRA_TIME, DEFAULT_NUMBER_OF_RUNS, DEFAULT_STACK_LIMIT_KB, MAX_CPU_EXTRA_TIME,
    MAX_NUMBER_OF_RUNS, MAX_STACK_LIMIT_KB,
};
use super::{status, Judge0Error, MAX_BATCH};
use crate::routes::AppState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rce_protocol::topology::{Language, Messaging, Topology};
use serde_json::{json, Map, Value};

/// The Judge0 version this surface answers as: its clients (the official SDK) check it.
pub const JUDGE0_VERSION: &str = "1.13.1";

/// A language's Judge0-style name: the version inside the parenthesis of its name, or after it
/// (`C (GCC 12.2.0)`, `Python (3.11.2)`).
pub fn judge0_name(language: &Language) -> String {
    match language.name.strip_suffix(')') {
        Some(open) if open.contains('(') => format!("{open} {})", language.version),
        _ => format!("{} ({})", language.name, language.version),
    }
}

/// Every (Judge0 id, language), by id.
fn listed(topology: &Topology) -> Vec<(u32, Language)> {
    let mut all: Vec<(u32, Language)> = topology
        .all_languages()
        .into_iter()
        .flat_map(|l| {
            l.compat
                .judge0_ids
                .clone()
                .into_iter()
                .map(move |id| (id, l.clone()))
        })
        .collect();
    all.sort_by_key(|(id, _)| *id);
    all
}

pub async fn languages(State(state): State<AppState>) -> Json<Value> {
    let list = listed(&state.topology)
        .into_iter()
        .map(|(id, l)| json!({"id": id, "name": judge0_name(&l)}))
        .collect();
    Json(Value::Array(list))
}

pub async fn all_languages(State(state): State<AppState>) -> Json<Value> {
    let list = listed(&state.topology)
        .into_iter()
        .map(|(id, l)| json!({"id": id, "name": judge0_name(&l), "is_archived": false}))
        .collect();
    Json(Value::Array(list))
}

pub async fn language(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Judge0Error> {
    let found = id
        .parse::<u32>()
        .ok()
        .and_then(|id| state.topology.language_by_judge0_id(id).map(|l| (id, l)));
    let Some((id, l)) = found else {
        return Err(Judge0Error::not_found("language"));
    };
    let program = rce_protocol::topology::Program {
        entrypoint: &l.file,
        file_names: vec![l.file.as_str()],
    };
    let command = |argv: Vec<String>| argv.join(" ");
    Ok(Json(json!({
        "id": id,
        "name": judge0_name(&l),
        "is_archived": false,
        "source_file": l.file,
        "compile_cmd": l.compile_argv(&program).map(command),
        "run_cmd": command(l.run_argv(&program, l.default_limits.memory_mb, &[])),
    })))
}

pub async fn statuses() -> Json<Value> {
    let list = status::STATUSES
        .iter()
        .map(|(id, d)| json!({"id": id, "description": d}))
        .collect();
    Json(Value::Array(list))
}

pub async fn about() -> Json<Value> {
    Json(json!({
        "version": JUDGE0_VERSION,
        "homepage": null,
        "source_code": null,
        "maintainer": null,
        "rce": {
            "version": env!("CARGO_PKG_VERSION"),
            "api": "/v1",
            "compatibility": "Judge0 CE 1.13.1 (docs/compatibility.md)",
        },
    }))
}

pub async fn version() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        JUDGE0_VERSION,
    )
        .into_response()
}

/// `GET /config_info`: every key Judge0 1.13.1 answers, with the values this service applies.
pub async fn config_info(State(state): State<AppState>) -> Json<Value> {
    let mut info = config(&state.topology);
    let hooks = &state.webhooks;
    info["enable_callbacks"] = json!(hooks.secret.is_some());
    info["callbacks_max_tries"] = json!(hooks.max_attempts());
    info["callbacks_timeout"] = json!(hooks.timeout.as_secs_f64());
    info["enable_submission_delete"] = json!(!state.judge0_authz.is_empty());
    info["maintenance_mode"] = json!(false);
    Json(info)
}

/// The keys that follow from the topology alone (the callback keys are set from the webhook
/// settings by [`config_info`]).
pub fn config(topology: &Topology) -> Value {
    let (d, m) = (topology.limits.default, topology.limits.max);
    let seconds = |ms: u64| ms as f64 / 1000.0;
    let file_kb = topology.sandbox.file_size_mb * 1024;
    let with_options: Vec<String> = topology
        .all_languages()
        .into_iter()
        .filter(|l| !l.compat.compiler_options.is_empty())
        .map(|l| judge0_name(&l))
        .collect();
    json!({
        "maintenance_mode": false,
        "enable_wait_result": true,
        "enable_compiler_options": true,
        "allowed_languages_for_compile_options": with_options,
        "enable_command_line_arguments": true,
        "enable_submission_delete": true,
        "enable_callbacks": false,
        "callbacks_max_tries": 0,
        "callbacks_timeout": 0.0,
        "enable_additional_files": true,
        "max_queue_size": topology.messaging.max_length,
        "cpu_time_limit": seconds(d.cpu_time_ms),
        "max_cpu_time_limit": seconds(m.cpu_time_ms),
        "cpu_extra_time": DEFAULT_CPU_EXTRA_TIME,
        "max_cpu_extra_time": MAX_CPU_EXTRA_TIME,
        "wall_time_limit": seconds(d.wall_time_ms),
        "max_wall_time_limit": seconds(m.wall_time_ms),
        "memory_limit": d.memory_mb * 1024,
        "max_memory_limit": m.memory_mb * 1024,
        "stack_limit": DEFAULT_STACK_LIMIT_KB,
        "max_stack_limit": MAX_STACK_LIMIT_KB,
        "max_processes_and_or_threads": d.processes,
        "max_max_processes_and_or_threads": m.processes,
        "enable_per_process_and_thread_time_limit": false,
        "allow_enable_per_process_and_thread_time_limit": false,
        "enable_per_process_and_thread_memory_limit": false,
        "allow_enable_per_process_and_thread_memory_limit": false,
        "max_file_size": file_kb,
        "max_max_file_size": file_kb,
        "number_of_runs": DEFAULT_NUMBER_OF_RUNS,
        "max_number_of_runs": MAX_NUMBER_OF_RUNS,
        "redirect_stderr_to_stdout": false,
        "max_extract_size": super::archive::MAX_EXTRACT_BYTES / 1024,
        "enable_batched_submissions": true,
        "max_submission_batch_size": MAX_BATCH,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": false,
        "allow_enable_network": false,
        "enable_network": false,
    })
}

/// `GET /system_info`: the api host's CPU and memory, as Judge0's flat map of strings.
pub async fn system_info() -> Json<Value> {
    let mut info = Map::new();
    info.insert("Architecture".into(), json!(std::env::consts::ARCH));
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    info.insert("CPU(s)".into(), json!(cpus.to_string()));
    if let Some(model) = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
    {
        info.insert("Model name".into(), json!(model.1.trim()));
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    let gib = |kb: u64| format!("{:.1}Gi", kb as f64 / 1024.0 / 1024.0);
    if let Some(total) = kb("MemTotal:") {
        info.insert("Mem".into(), json!(gib(total)));
    }
    if let Some(total) = kb("SwapTotal:") {
        info.insert("Swap".into(), json!(gib(total)));
    }
    Json(Value::Object(info))
}

/// `GET /workers`: per language, its queue's backlog (`size`) and the runners consuming it
/// (`available`), read from RabbitMQ. Which of a runner's containers are idle or working is in
/// the runners' own metrics, not known to the api: `idle` and `working` are `null`.
pub async fn workers(State(state): State<AppState>) -> Result<Json<Value>, Judge0Error> {
    // Answered from the broker at most once a second (each look opens a channel), whoever asks.
    static LAST: std::sync::Mutex<Option<(std::time::Instant, Value)>> =
        std::sync::Mutex::new(None);
    if let Some((at, value)) = LAST.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        if at.elapsed() < std::time::Duration::from_secs(1) {
            return Ok(Json(value.clone()));
        }
    }
    let fresh = workers_now(&state).await?;
    *LAST.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((std::time::Instant::now(), fresh.clone()));
    Ok(Json(fresh))
}

async fn workers_now(state: &AppState) -> Result<Value, Judge0Error> {
    let unavailable = || Judge0Error::unavailable("the job broker is unavailable; retry shortly");
    let session = state.broker.session().ok_or_else(unavailable)?;
    let channel = session
        .connection
        .create_channel()
        .await
        .map_err(|_| unavailable())?;
    let mut list = Vec::new();
    for language in state.topology.all_languages() {
        let queue = format!(
            "{}{}",
            state.topology.messaging.job_queue_prefix, language.id
        );
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await;
        let (size, consumers) = match declared {
            Ok(q) => (Some(q.message_count()), Some(q.consumer_count())),
            Err(_) => break,
        };
        list.push(json!({
            "queue": language.id,
            "routing_key": Messaging::job_routing_key(&language.id),
            "size": size,
            "available": consumers,
            "idle": null,
            "working": null,
            "paused": 0,
            "failed": 0,
        }));
    }
    let _ = channel.close(200, "done".into()).await;
    if list.len() != state.topology.languages.len() {
        return Err(unavailable());
    }
    Ok(Value::Array(list))
}
