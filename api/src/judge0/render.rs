//! A job as Judge0 shows a submission: Judge0's field names and JSON types (`time` a decimal
//! string of CPU seconds, `memory` KB, `status {id, description}`, timestamps with milliseconds
//! and `Z`, empty output as `null`), the `fields` selection, and `base64_encoded` (Ruby's
//! `encode64`: a line break every 60 characters and one at the end).

use super::request::Echo;
use super::status;
use crate::job_view::JobView;
use base64::Engine;
use rce_protocol::encoding::Encoding;
use rce_protocol::judge::TestVerdict;
use rce_protocol::result::Verdict;
use rce_protocol::topology::Topology;
use serde_json::{json, Map, Value};

/// The fields Judge0 sends when a client names none.
pub const DEFAULT_FIELDS: [&str; 8] = [
    "token",
    "time",
    "memory",
    "stdout",
    "stderr",
    "compile_output",
    "message",
    "status",
];

/// Every field `fields=*` gives, in Judge0 1.13's column order (no `queued_at` or `started_at`:
/// later Judge0 versions added them, and the official SDK's model refuses fields it does not know).
pub const ALL_FIELDS: [&str; 35] = [
    "source_code",
    "language_id",
    "stdin",
    "expected_output",
    "stdout",
    "status_id",
    "created_at",
    "finished_at",
    "time",
    "memory",
    "stderr",
    "token",
    "number_of_runs",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "compile_output",
    "exit_code",
    "exit_signal",
    "message",
    "wall_time",
    "compiler_options",
    "command_line_arguments",
    "redirect_stderr_to_stdout",
    "callback_url",
    "additional_files",
    "enable_network",
    "status",
    "language",
];

/// Text fields: base64 under `base64_encoded=true`, and checked to be UTF-8 otherwise.
const TEXT_FIELDS: [&str; 7] = [
    "source_code",
    "stdin",
    "expected_output",
    "stdout",
    "stderr",
    "compile_output",
    "message",
];

pub const NOT_UTF8: &str = "some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter";

/// The `fields` query: the names asked for, `*` for all, the default set when absent; unknown
/// names are Judge0's 400 `invalid fields: [a, b]`.
pub fn parse_fields(fields: Option<&str>) -> Result<Vec<&'static str>, String> {
    let Some(text) = fields.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(DEFAULT_FIELDS.to_vec());
    };
    let mut chosen = Vec::new();
    let mut invalid = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "*" {
            return Ok(ALL_FIELDS.to_vec());
        }
        match ALL_FIELDS.iter().find(|f| **f == name) {
            Some(f) if !chosen.contains(f) => chosen.push(*f),
            Some(_) => {}
            None => invalid.push(name.to_string()),
        }
    }
    if invalid.is_empty() {
        Ok(chosen)
    } else {
        Err(format!("invalid fields: [{}]", invalid.join(", ")))
    }
}

/// What a run came to, in Judge0's terms.
#[derive(Debug, Default)]
struct Outcome {
    status: u32,
    stdout: Option<Vec<u8>>,
    stderr: Option<Vec<u8>>,
    compile_output: Option<Vec<u8>>,
    message: Option<String>,
    exit_code: Option<i64>,
    exit_signal: Option<i32>,
    time: Option<f64>,
    wall_time: Option<f64>,
    memory: Option<u64>,
}

/// A result field's bytes (empty if its base64 does not decode, which a stored result never has).
fn bytes(text: &str, encoding: Encoding) -> Vec<u8> {
    encoding.decode(text.to_owned()).unwrap_or_default()
}

fn non_empty(b: Vec<u8>) -> Option<Vec<u8>> {
    (!b.is_empty()).then_some(b)
}

/// isolate's message for how a program ended; ours for the two limits Judge0 has no status for.
fn message_for(
    status: u32,
    exit_code: Option<i32>,
    signal: Option<i32>,
    memory: bool,
    output: bool,
) -> Option<String> {
    match status {
        _ if memory => Some("Memory limit exceeded".into()),
        _ if output => Some("Output limit exceeded".into()),
        status::TIME_LIMIT => Some("Time limit exceeded".into()),
        7..=12 => match (signal, exit_code) {
            (Some(s), _) => Some(format!("Caught fatal signal {s}")),
            (None, Some(c)) => Some(format!("Exited with error status {c}")),
            (None, None) => None,
        },
        _ => None,
    }
}

fn outcome(view: &JobView, echo: &Echo) -> Outcome {
    if let Some(unfinished) = status::of_unfinished(view.status) {
        return Outcome {
            status: unfinished,
            ..Outcome::default()
        };
    }
    let compile_output = view.compile.as_ref().and_then(|c| {
        let mut out = bytes(&c.stdout, c.stdout_encoding);
        out.extend(bytes(&c.stderr, c.stderr_encoding));
        non_empty(out)
    });
    let cpu_limit_ms = (echo.cpu_time_limit * 1000.0).round() as u64;
    let verdict = view.verdict.unwrap_or(Verdict::InternalError);
    let failed = |message: String| Outcome {
        status: status::INTERNAL_ERROR,
        compile_output: compile_output.clone(),
        message: Some(message),
        ..Outcome::default()
    };
    match verdict {
        Verdict::CompileError => {
            return Outcome {
                status: status::COMPILATION_ERROR,
                compile_output,
                ..Outcome::default()
            }
        }
        Verdict::Cancelled => return failed("Cancelled".into()),
        Verdict::InternalError => {
            return failed(
                view.error
                    .clone()
                    .unwrap_or_else(|| "internal error".into()),
            )
        }
        _ => {}
    }
    if let Some(tests) = &view.tests {
        // Judge mode (`expected_output` or `number_of_runs`): the runs that ran; Judge0 shows
        // the last run's output (each run overwrites it) and averages time and memory.
        let ran: Vec<_> = tests
            .iter()
            .filter(|t| t.verdict != TestVerdict::Skipped)
            .collect();
        let Some(last) = ran.last() else {
            return failed("no run took place".into());
        };
        let n = ran.len() as f64;
        let signal = last.signal.as_deref().and_then(status::signal_number);
        let status_id = status::of_test(last.verdict, signal, last.cpu_ms > cpu_limit_ms);
        return Outcome {
            status: status_id,
            stdout: last
                .stdout
                .as_ref()
                .and_then(|s| non_empty(bytes(s, last.stdout_encoding))),
            stderr: non_empty(bytes(&last.stderr, last.stderr_encoding)),
            compile_output,
            message: message_for(
                status_id,
                last.exit_code,
                signal,
                last.verdict == TestVerdict::MemoryLimitExceeded,
                last.verdict == TestVerdict::OutputLimitExceeded,
            ),
            exit_code: Some(last.exit_code.unwrap_or(0).into()),
            exit_signal: signal,
            time: Some(ran.iter().map(|t| t.cpu_ms as f64).sum::<f64>() / n / 1000.0),
            wall_time: Some(ran.iter().map(|t| t.wall_ms as f64).sum::<f64>() / n / 1000.0),
            memory: Some((ran.iter().map(|t| t.memory_kb as f64).sum::<f64>() / n).round() as u64),
        };
    }
    let Some(run) = &view.run else {
        return failed(
            view.error
                .clone()
                .unwrap_or_else(|| "the run did not take place".into()),
        );
    };
    let signal = run.signal.as_deref().and_then(status::signal_number);
    let status_id = status::of_verdict(verdict, signal, run.cpu_ms > cpu_limit_ms);
    Outcome {
        status: status_id,
        stdout: non_empty(bytes(&run.stdout, run.stdout_encoding)),
        stderr: non_empty(bytes(&run.stderr, run.stderr_encoding)),
        compile_output,
        message: message_for(
            status_id,
            run.exit_code,
            signal,
            verdict == Verdict::MemoryLimitExceeded,
            verdict == Verdict::OutputLimitExceeded,
        ),
        exit_code: Some(run.exit_code.unwrap_or(0).into()),
        exit_signal: signal,
        time: Some(run.cpu_ms as f64 / 1000.0),
        wall_time: Some(run.wall_ms as f64 / 1000.0),
        memory: Some(run.memory_kb),
    }
}

/// A decimal of seconds as Judge0's decimal columns serialize: a string, at most three
/// decimals, no trailing zeros past the first (`"0.001"`, `"2.0"`).
pub fn decimal(seconds: f64) -> String {
    let text = format!("{seconds:.3}");
    let trimmed = text.trim_end_matches('0');
    if trimmed.ends_with('.') {
        format!("{trimmed}0")
    } else {
        trimmed.to_string()
    }
}

/// Ruby's `Base64.encode64`: standard alphabet, a line break after every 60 characters and at
/// the end.
pub fn encode64(data: &[u8]) -> String {
    let flat = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(flat.len() + flat.len() / 60 + 1);
    for chunk in flat.as_bytes().chunks(60) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

/// Judge0's timestamp form: milliseconds and `Z`.
fn timestamp(rfc3339: &str) -> Value {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => Value::String(
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
        ),
        Err(_) => Value::Null,
    }
}

/// The default echo of a job submitted through another surface: what Judge0 would have
/// defaulted, its language under its first Judge0 id.
pub fn default_echo(view: &JobView, topology: &Topology) -> Echo {
    let language = topology.language(&view.language);
    Echo {
        language_id: language
            .as_ref()
            .and_then(|l| l.compat.judge0_ids.first().copied())
            .unwrap_or(0),
        number_of_runs: 1,
        cpu_time_limit: language
            .as_ref()
            .map_or(0.0, |l| l.default_limits.cpu_time_ms as f64 / 1000.0),
        wall_time_limit: language
            .as_ref()
            .map_or(0.0, |l| l.default_limits.wall_time_ms as f64 / 1000.0),
        memory_limit: language
            .as_ref()
            .map_or(0, |l| l.default_limits.memory_mb * 1024),
        ..Echo::default()
    }
}

/// The submission as Judge0 would show it: `Err(NOT_UTF8)` when a text field asked for is not
/// UTF-8 and `base64` is off.
pub fn submission(
    view: &JobView,
    echo: &Echo,
    fields: &[&str],
    base64: bool,
    topology: &Topology,
) -> Result<Value, &'static str> {
    let out = outcome(view, echo);
    let decode = |b64: &Option<String>| {
        b64.as_deref()
            .and_then(|s| rce_protocol::bytes::decode_base64(s).ok())
    };
    let texts: [(&str, Option<Vec<u8>>); 7] = [
        (
            "source_code",
            rce_protocol::bytes::decode_base64(&echo.source_code).ok(),
        ),
        ("stdin", decode(&echo.stdin)),
        ("expected_output", decode(&echo.expected_output)),
        ("stdout", out.stdout.clone()),
        ("stderr", out.stderr.clone()),
        ("compile_output", out.compile_output.clone()),
        ("message", out.message.clone().map(String::into_bytes)),
    ];
    let language = topology.language(&view.language);
    let language_name = language.as_ref().map(super::info::judge0_name);
    let mut map = Map::new();
    for field in fields {
        let text = TEXT_FIELDS
            .contains(field)
            .then(|| texts.iter().find(|(n, _)| n == field))
            .flatten();
        let value = if let Some((_, text)) = text {
            match text {
                None => Value::Null,
                Some(b) if base64 => Value::String(encode64(b)),
                Some(b) => match std::str::from_utf8(b) {
                    Ok(s) => Value::String(s.to_string()),
                    Err(_) => return Err(NOT_UTF8),
                },
            }
        } else {
            match *field {
                "token" => json!(view.id),
                "language_id" => json!(echo.language_id),
                "status_id" => json!(out.status),
                "status" => {
                    json!({"id": out.status, "description": status::description(out.status)})
                }
                "language" => json!({"id": echo.language_id, "name": language_name}),
                "created_at" => timestamp(&view.created_at),
                "finished_at" => view.finished_at.as_deref().map_or(Value::Null, timestamp),
                "time" => out.time.map_or(Value::Null, |t| json!(decimal(t))),
                "wall_time" => out.wall_time.map_or(Value::Null, |t| json!(decimal(t))),
                "memory" => json!(out.memory),
                "exit_code" => json!(out.exit_code),
                "exit_signal" => json!(out.exit_signal),
                "number_of_runs" => json!(echo.number_of_runs),
                "cpu_time_limit" => json!(decimal(echo.cpu_time_limit)),
                "cpu_extra_time" => json!(decimal(echo.cpu_extra_time)),
                "wall_time_limit" => json!(decimal(echo.wall_time_limit)),
                "memory_limit" => json!(echo.memory_limit),
                "stack_limit" => json!(echo.stack_limit),
                "max_processes_and_or_threads" => json!(echo.max_processes_and_or_threads),
                "max_file_size" => json!(echo.max_file_size),
                "enable_per_process_and_thread_time_limit"
                | "enable_per_process_and_thread_memory_limit"
                | "enable_network" => json!(false),
                "compiler_options" => json!(echo.compiler_options),
                "command_line_arguments" => json!(echo.command_line_arguments),
                "redirect_stderr_to_stdout" => json!(echo.redirect_stderr_to_stdout),
                "callback_url" => json!(echo.callback_url),
                "additional_files" => json!(echo.additional_files),
                _ => Value::Null,
            }
        };
        map.insert((*field).to_string(), value);
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_default_star_and_invalid() {
        assert_eq!(parse_fields(None).unwrap(), DEFAULT_FIELDS.to_vec());
        assert_eq!(parse_fields(Some("*")).unwrap().len(), ALL_FIELDS.len());
        assert_eq!(
            parse_fields(Some("stdout,status_id,stdout")).unwrap(),
            vec!["stdout", "status_id"]
        );
        assert_eq!(
            parse_fields(Some("stdout,foo,bar")).unwrap_err(),
            "invalid fields: [foo, bar]"
        );
        for f in TEXT_FIELDS {
            assert!(ALL_FIELDS.contains(&f));
        }
    }

    #[test]
    fn decimals_and_ruby_base64() {
        assert_eq!(decimal(0.001), "0.001");
        assert_eq!(decimal(2.0), "2.0");
        assert_eq!(decimal(0.1234), "0.123");
        assert_eq!(encode64(b"hello, Judge0\n"), "aGVsbG8sIEp1ZGdlMAo=\n");
        let long = encode64(&[b'a'; 100]);
        assert_eq!(long.lines().next().unwrap().len(), 60);
        assert!(long.ends_with('\n'));
    }
}
