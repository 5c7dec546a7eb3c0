//! A Judge0 submission (`submission_params` of Judge0 CE 1.13.1), read the way Judge0 reads it,
//! checked against our real limits with Judge0's messages, and turned into one of our
//! submissions ([`SubmitRequest`]), which then goes through the same admission as a v1 job.
//!
//! Judge0's rules kept here: unknown keys are ignored; `null` means "the default"; numbers may
//! come as JSON numbers or numeric strings (Rails casts them); every refused field is reported at
//! once, as `{"field": ["message", ...]}`. How each field maps onto a job is in
//! docs/compatibility.md.

use super::Judge0Error;
use crate::judge_submission::{CheckerRequest, JudgeRequest, TestRequest};
use crate::submission::SubmitRequest;
use base64::Engine;
use rce_protocol::judge::Checker;
use rce_protocol::limits::PartialLimits;
use rce_protocol::topology::{Language, Topology};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Judge0's fixed bounds that have no counterpart in our limits (its defaults and maxima).
pub const MAX_CPU_EXTRA_TIME: f64 = 5.0;
pub const DEFAULT_CPU_EXTRA_TIME: f64 = 0.0;
pub const MIN_WALL_TIME_LIMIT: f64 = 1.0;
pub const MIN_MEMORY_LIMIT_KB: u64 = 2048;
pub const DEFAULT_STACK_LIMIT_KB: u64 = 64_000;
pub const MAX_STACK_LIMIT_KB: u64 = 128_000;
pub const DEFAULT_NUMBER_OF_RUNS: u64 = 1;
pub const MAX_NUMBER_OF_RUNS: u64 = 20;
/// `compiler_options` and `command_line_arguments`: at most this many characters (Judge0's).
pub const MAX_OPTIONS_CHARS: usize = 512;

/// What a Judge0 client sent, as Judge0 shows it back (`GET /submissions/{token}?fields=*`),
/// with the defaults it got. Stored beside the job for as long as the job's record.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Echo {
    pub language_id: u32,
    /// Bytes, base64 (so any bytes round-trip).
    pub source_code: String,
    pub stdin: Option<String>,
    pub expected_output: Option<String>,
    pub number_of_runs: u64,
    pub cpu_time_limit: f64,
    pub cpu_extra_time: f64,
    pub wall_time_limit: f64,
    pub memory_limit: u64,
    pub stack_limit: u64,
    pub max_processes_and_or_threads: u64,
    pub max_file_size: u64,
    pub compiler_options: Option<String>,
    pub command_line_arguments: Option<String>,
    pub redirect_stderr_to_stdout: bool,
    pub callback_url: Option<String>,
    pub additional_files: Option<String>,
}

/// Refusals, by Judge0 field name, in Judge0's 422 shape.
#[derive(Debug, Default)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_string())
            .or_default()
            .push(message.into());
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_value(self) -> Value {
        serde_json::to_value(self.0).expect("a map of strings serializes")
    }
}

/// Reads one field leniently, recording a Judge0-style error when its type is wrong.
struct Reader<'a> {
    body: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.body.get(key).filter(|v| !v.is_null())
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                self.errors.add(key, "must be a string");
                None
            }
        }
    }

    fn number(&mut self, key: &str) -> Option<f64> {
        let parsed = match self.get(key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(x) if x.is_finite() => Some(x),
            _ => {
                self.errors.add(key, "is not a number");
                None
            }
        }
    }

    fn integer(&mut self, key: &str) -> Option<i64> {
        let x = self.number(key)?;
        if x.fract() != 0.0 || x.abs() > 1e15 {
            self.errors.add(key, "must be an integer");
            return None;
        }
        Some(x as i64)
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" || s == "1" => Some(true),
            Value::String(s) if s == "false" || s == "0" || s.is_empty() => Some(false),
            Value::Number(n) if n.as_u64() == Some(1) => Some(true),
            Value::Number(n) if n.as_u64() == Some(0) => Some(false),
            _ => {
                self.errors.add(key, "must be true or false");
                None
            }
        }
    }

    /// `key` in `[min, max]`, else the Rails numericality messages; the default when absent.
    fn bounded(&mut self, key: &str, default: f64, min: f64, min_inclusive: bool, max: f64) -> f64 {
        let Some(x) = self.number(key) else {
            return default;
        };
        if min_inclusive && x < min {
            self.errors.add(
                key,
                format!("must be greater than or equal to {}", show(min)),
            );
        } else if !min_inclusive && x <= min {
            self.errors
                .add(key, format!("must be greater than {}", show(min)));
        } else if x > max {
            self.errors
                .add(key, format!("must be less than or equal to {}", show(max)));
        }
        x
    }
}

/// A bound as Judge0 prints it: `5`, not `5.0`, when it is whole.
fn show(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        x.to_string()
    }
}

/// Base64 as Judge0 reads it when `base64_encoded=true` (Ruby's lenient `decode64`: line breaks
/// and other characters outside the alphabet are skipped, padding is optional).
pub fn decode_lenient(text: &str) -> Option<Vec<u8>> {
    let kept: String = text
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/')
        .collect();
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(kept.as_bytes())
        .ok()
}

/// Splits `command_line_arguments` into arguments the way a shell would split words (Judge0
/// appends them to the run command for a shell): whitespace separates, single quotes keep
/// everything, double quotes keep everything but `\"` and `\\`, a backslash escapes the next
/// character. Nothing is expanded: there is no shell.
pub fn split_arguments(text: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => current.push(c),
                        None => return Err("has an unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => current.push(c),
                            Some(c) => {
                                current.push('\\');
                                current.push(c);
                            }
                            None => return Err("ends with a backslash".into()),
                        },
                        Some(c) => current.push(c),
                        None => return Err("has an unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => current.push(c),
                    None => return Err("ends with a backslash".into()),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    args.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        args.push(current);
    }
    Ok(args)
}

/// A Judge0 submission made ours: the submission to admit, and what to show back.
pub struct Converted {
    pub request: SubmitRequest,
    pub echo: Echo,
    pub language: Language,
}

/// Reads `body` (one submission object). `base64` is the query's `base64_encoded=true`: then
/// `source_code`, `stdin` and `expected_output` are base64.
pub fn convert(body: &Value, base64: bool, topology: &Topology) -> Result<Converted, Judge0Error> {
    let Some(body) = body.as_object() else {
        return Err(Judge0Error::bad_request(
            "the submission must be a JSON object",
        ));
    };
    let mut r = Reader {
        body,
        errors: FieldErrors::default(),
    };
    let text = |r: &mut Reader, key: &str| -> Option<Vec<u8>> {
        let s = r.string(key)?;
        if !base64 {
            return Some(s.into_bytes());
        }
        match decode_lenient(&s) {
            Some(bytes) => Some(bytes),
            None => {
                r.errors.add(key, "is not valid base64");
                None
            }
        }
    };

    // The language first: every limit is checked against its maxima.
    let language = match r.integer("language_id") {
        None if !r.body.contains_key("language_id") || r.body["language_id"].is_null() => {
            r.errors.add("language_id", "can't be blank");
            None
        }
        None => None,
        Some(id) => match u32::try_from(id)
            .ok()
            .and_then(|id| topology.language_by_judge0_id(id))
        {
            Some(lang) => Some((id as u32, lang)),
            None => {
                r.errors.add(
                    "language_id",
                    format!("language with id {id} doesn't exist"),
                );
                None
            }
        },
    };
    let source = text(&mut r, "source_code");
    if source.as_ref().is_none_or(|s| s.is_empty()) && !r.errors.0.contains_key("source_code") {
        r.errors.add("source_code", "can't be blank");
    }
    let stdin = text(&mut r, "stdin");
    let expected = text(&mut r, "expected_output");

    let global = &topology.limits;
    let (default, max) = match &language {
        Some((_, l)) => (l.default_limits, l.max_limits),
        None => (global.default, global.max),
    };
    let seconds = |ms: u64| ms as f64 / 1000.0;
    let cpu = r.bounded(
        "cpu_time_limit",
        seconds(default.cpu_time_ms),
        0.0,
        true,
        seconds(max.cpu_time_ms),
    );
    let extra = r.bounded(
        "cpu_extra_time",
        DEFAULT_CPU_EXTRA_TIME,
        0.0,
        true,
        MAX_CPU_EXTRA_TIME,
    );
    let wall = r.bounded(
        "wall_time_limit",
        seconds(default.wall_time_ms),
        MIN_WALL_TIME_LIMIT,
        true,
        seconds(max.wall_time_ms),
    );
    let memory_kb = r.bounded(
        "memory_limit",
        (default.memory_mb * 1024) as f64,
        MIN_MEMORY_LIMIT_KB as f64,
        true,
        (max.memory_mb * 1024) as f64,
    );
    let stack_kb = r.bounded(
        "stack_limit",
        DEFAULT_STACK_LIMIT_KB as f64,
        0.0,
        true,
        MAX_STACK_LIMIT_KB as f64,
    );
    let processes = r.bounded(
        "max_processes_and_or_threads",
        default.processes as f64,
        0.0,
        false,
        max.processes as f64,
    );
    let max_file_kb = (topology.sandbox.file_size_mb * 1024) as f64;
    let file_kb = r.bounded("max_file_size", max_file_kb, 0.0, true, max_file_kb);
    let runs = r.bounded(
        "number_of_runs",
        DEFAULT_NUMBER_OF_RUNS as f64,
        0.0,
        false,
        MAX_NUMBER_OF_RUNS as f64,
    );
    for (key, x) in [
        ("memory_limit", memory_kb),
        ("stack_limit", stack_kb),
        ("max_processes_and_or_threads", processes),
        ("max_file_size", file_kb),
        ("number_of_runs", runs),
    ] {
        if x.fract() != 0.0 && !r.errors.0.contains_key(key) {
            r.errors.add(key, "must be an integer");
        }
    }
    for key in [
        "enable_per_process_and_thread_time_limit",
        "enable_per_process_and_thread_memory_limit",
    ] {
        if r.boolean(key) == Some(true) {
            r.errors.add(key, "this option cannot be enabled");
        }
    }
    if r.boolean("enable_network") == Some(true) {
        r.errors
            .add("enable_network", "enabling network is not allowed");
    }
    let redirect = r.boolean("redirect_stderr_to_stdout").unwrap_or(false);
    let callback_url = r.string("callback_url");
    // Always base64, whatever `base64_encoded` says (as in Judge0).
    let additional_files = r.string("additional_files");
    let mut extra_files = Vec::new();
    if let (Some(text), Some((_, lang))) = (&additional_files, &language) {
        match decode_lenient(text) {
            None => r.errors.add("additional_files", "is not valid base64"),
            Some(zip) => match super::archive::extract(&zip, &lang.file) {
                Ok(files) => extra_files = files,
                Err(why) => r.errors.add("additional_files", why),
            },
        }
    }

    let compiler_options = r.string("compiler_options");
    let mut options = Vec::new();
    if let (Some(text), Some((_, lang))) = (&compiler_options, &language) {
        if text.chars().count() > MAX_OPTIONS_CHARS {
            r.errors.add(
                "compiler_options",
                format!("is too long (maximum is {MAX_OPTIONS_CHARS} characters)"),
            );
        } else if !lang.is_compiled() && !text.trim().is_empty() {
            r.errors.add(
                "compiler_options",
                "setting compiler options is only allowed for compiled languages",
            );
        } else {
            for option in text.split_whitespace() {
                if lang.compat.compiler_options.iter().any(|o| o == option) {
                    options.push(option.to_string());
                } else {
                    r.errors.add(
                        "compiler_options",
                        format!(
                            "option {option:?} is not allowed for {}; allowed: {}",
                            lang.name,
                            lang.compat.compiler_options.join(" ")
                        ),
                    );
                }
            }
        }
    }
    let arguments = r.string("command_line_arguments");
    let mut args = Vec::new();
    if let Some(text) = &arguments {
        if text.chars().count() > MAX_OPTIONS_CHARS {
            r.errors.add(
                "command_line_arguments",
                format!("is too long (maximum is {MAX_OPTIONS_CHARS} characters)"),
            );
        } else {
            match split_arguments(text) {
                Ok(split) => args = split,
                Err(why) => r.errors.add("command_line_arguments", why),
            }
        }
    }

    if !r.errors.is_empty() {
        return Err(Judge0Error::unprocessable(r.errors));
    }
    let (language_id, language) = language.expect("no errors: the language is known");
    let source = source.expect("no errors: the source is given");
    let stdin = stdin.unwrap_or_default();
    let runs = runs as u64;
    let encode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);

    // isolate's extra time: the program may run on to cpu + extra before it is stopped, and is
    // a time limit exceeded past cpu (rendering compares its cpu_ms with `cpu_time_limit`).
    // Judge0's bounds admit values below our minimums (2 MiB of memory, 1 process, 0 s of CPU)
    // and a CPU limit plus extra time above our maximum: those are raised or lowered to ours,
    // rather than refused with v1's messages for a field Judge0 accepts.
    let (min, max) = (rce_protocol::limits::MINIMUM, language.max_limits);
    let limits = PartialLimits {
        wall_time_ms: Some(
            ((wall * 1000.0).round() as u64)
                .max(min.wall_time_ms)
                .min(max.wall_time_ms),
        ),
        cpu_time_ms: Some(((cpu + extra) * 1000.0).round() as u64)
            .map(|ms| ms.max(min.cpu_time_ms).min(max.cpu_time_ms)),
        memory_mb: Some(
            (memory_kb as u64)
                .div_ceil(1024)
                .max(min.memory_mb)
                .min(max.memory_mb),
        ),
        processes: Some((processes as u64).max(min.processes).min(max.processes)),
        output_bytes: None,
    };
    // One run against an expected output, or several runs: judge mode (compiled once, each run
    // a test, Judge0's comparison = our `lines`), stopping at the first run that fails as
    // Judge0 does. A single run with nothing to compare is a plain job.
    let judged = expected.is_some() || runs > 1;
    let judge = judged.then(|| JudgeRequest {
        tests: (0..runs)
            .map(|_| TestRequest {
                stdin: Some(encode(&stdin)),
                stdin_encoding: Some("base64".into()),
                expected: expected.as_deref().map(encode),
                expected_encoding: expected.as_ref().map(|_| "base64".into()),
                ..TestRequest::default()
            })
            .collect(),
        checker: Some(CheckerRequest::BuiltIn(Checker::Lines {})),
        stop_on_failure: true,
        return_output: true,
    });
    let request = SubmitRequest {
        language: language.id.clone(),
        source: None,
        files: Some(
            std::iter::once((language.file.clone(), source.clone()))
                .chain(extra_files)
                .map(|(name, bytes)| crate::submission::FileRequest {
                    name,
                    content: encode(&bytes),
                    encoding: "base64".into(),
                })
                .collect(),
        ),
        entrypoint: Some(language.file.clone()),
        stdin: if judged {
            String::new()
        } else {
            encode(&stdin)
        },
        stdin_encoding: "base64".into(),
        args,
        limits,
        interactive: false,
        judge,
        compiler_options: options,
        merge_stderr: redirect,
        callback: callback_url.clone().map(|url| crate::webhooks::Callback {
            url,
            kind: crate::webhooks::CallbackKind::Judge0,
        }),
    };
    let echo = Echo {
        language_id,
        source_code: encode(&source),
        stdin: (!stdin.is_empty() || body.get("stdin").is_some_and(|v| !v.is_null()))
            .then(|| encode(&stdin)),
        expected_output: expected.as_deref().map(encode),
        number_of_runs: runs,
        cpu_time_limit: cpu,
        cpu_extra_time: extra,
        wall_time_limit: wall,
        memory_limit: memory_kb as u64,
        stack_limit: stack_kb as u64,
        max_processes_and_or_threads: processes as u64,
        max_file_size: file_kb as u64,
        compiler_options,
        command_line_arguments: arguments,
        redirect_stderr_to_stdout: redirect,
        callback_url,
        additional_files,
    };
    Ok(Converted {
        request,
        echo,
        language,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn topology() -> Topology {
        Topology::from_source_tree().unwrap()
    }

    fn refused(body: Value) -> Value {
        match convert(&body, false, &topology()) {
            Err(e) => e.body,
            Ok(_) => panic!("accepted: {body}"),
        }
    }

    #[test]
    fn missing_language_and_source_are_both_reported() {
        let body = refused(json!({}));
        assert_eq!(body["language_id"], json!(["can't be blank"]));
        assert_eq!(body["source_code"], json!(["can't be blank"]));
        let body = refused(json!({"language_id": 9999, "source_code": "x"}));
        assert_eq!(
            body["language_id"],
            json!(["language with id 9999 doesn't exist"])
        );
    }

    #[test]
    fn limits_are_checked_against_ours_with_judge0_messages() {
        let body = refused(json!({"language_id": 71, "source_code": "print(1)",
            "cpu_time_limit": 1000, "wall_time_limit": 0.5, "memory_limit": 100,
            "number_of_runs": 0, "cpu_extra_time": "x"}));
        assert_eq!(
            body["cpu_time_limit"],
            json!(["must be less than or equal to 20"])
        );
        assert_eq!(
            body["wall_time_limit"],
            json!(["must be greater than or equal to 1"])
        );
        assert_eq!(
            body["memory_limit"],
            json!(["must be greater than or equal to 2048"])
        );
        assert_eq!(body["number_of_runs"], json!(["must be greater than 0"]));
        assert_eq!(body["cpu_extra_time"], json!(["is not a number"]));
    }

    #[test]
    fn network_and_per_process_limits_are_refused() {
        let body = refused(
            json!({"language_id": 71, "source_code": "x", "enable_network": true,
            "enable_per_process_and_thread_time_limit": true}),
        );
        assert_eq!(
            body["enable_network"],
            json!(["enabling network is not allowed"])
        );
        assert_eq!(
            body["enable_per_process_and_thread_time_limit"],
            json!(["this option cannot be enabled"])
        );
    }

    #[test]
    fn compiler_options_come_from_the_allow_list_only() {
        let ok = convert(
            &json!({"language_id": 54, "source_code": "int main(){}", "compiler_options": " -O0  -Wall "}),
            false,
            &topology(),
        )
        .unwrap_or_else(|e| panic!("{}", e.body));
        assert_eq!(ok.request.compiler_options, vec!["-O0", "-Wall"]);
        let body = refused(json!({"language_id": 54, "source_code": "x",
            "compiler_options": "-O2 -fplugin=/tmp/evil.so"}));
        assert!(body["compiler_options"][0]
            .as_str()
            .unwrap()
            .contains("\"-fplugin=/tmp/evil.so\" is not allowed"));
        let body =
            refused(json!({"language_id": 71, "source_code": "x", "compiler_options": "-O2"}));
        assert_eq!(
            body["compiler_options"],
            json!(["setting compiler options is only allowed for compiled languages"])
        );
    }

    #[test]
    fn arguments_split_like_shell_words_without_a_shell() {
        assert_eq!(
            split_arguments(r#"a "b c" 'd $e' f\ g "h\"i" $(rm -rf /)"#).unwrap(),
            vec!["a", "b c", "d $e", "f g", "h\"i", "$(rm", "-rf", "/)"]
        );
        assert!(split_arguments("'open").is_err());
        assert_eq!(split_arguments("   ").unwrap(), Vec::<String>::new());
        assert_eq!(split_arguments("''").unwrap(), vec![""]);
    }

    #[test]
    fn base64_is_read_leniently_like_ruby() {
        assert_eq!(decode_lenient("aGVs\nbG8=\n").unwrap(), b"hello");
        assert_eq!(decode_lenient("aGVsbG8").unwrap(), b"hello");
    }

    #[test]
    fn expected_output_or_several_runs_become_judge_mode() {
        let t = topology();
        let plain = convert(
            &json!({"language_id": 71, "source_code": "print(1)"}),
            false,
            &t,
        )
        .unwrap_or_else(|e| panic!("{}", e.body));
        assert!(plain.request.judge.is_none());
        let judged = convert(
            &json!({"language_id": 71, "source_code": "cHJpbnQoMSk=", "expected_output": "MQo=",
                    "number_of_runs": 3, "cpu_time_limit": 1, "cpu_extra_time": 0.5}),
            true,
            &t,
        )
        .unwrap_or_else(|e| panic!("{}", e.body));
        let judge = judged.request.judge.unwrap();
        assert_eq!(judge.tests.len(), 3);
        assert!(judge.stop_on_failure && judge.return_output);
        assert_eq!(judged.request.limits.cpu_time_ms, Some(1500));
        // What Judge0 admits below our minimums or above our maximum is brought within them.
        let edge = convert(
            &json!({"language_id": 71, "source_code": "x", "memory_limit": 2048,
                    "max_processes_and_or_threads": 1, "cpu_time_limit": 20, "cpu_extra_time": 5}),
            false,
            &t,
        )
        .unwrap_or_else(|e| panic!("{}", e.body));
        assert_eq!(edge.request.limits.memory_mb, Some(16));
        assert_eq!(edge.request.limits.processes, Some(4));
        assert_eq!(edge.request.limits.cpu_time_ms, Some(20_000));
        assert_eq!(judged.echo.expected_output.as_deref(), Some("MQo="));
    }
}
