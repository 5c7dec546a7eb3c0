//! A Piston v2 execute request (`POST /api/v2/execute`, and the WebSocket's `init`), checked with
//! Piston's messages and turned into one of our submissions.

use super::semver;
use crate::submission::{FileRequest, SubmitRequest};
use base64::Engine;
use rce_protocol::limits::PartialLimits;
use rce_protocol::topology::{Language, Topology};
use serde_json::{Map, Value};

/// A Piston request made ours.
pub struct Converted {
    pub request: SubmitRequest,
    pub language: Language,
}

/// A limit field: absent (or Piston's falsy 0 / null) is the default; otherwise a non-negative
/// number at most `configured`.
fn limit(body: &Map<String, Value>, name: &str, configured: u64) -> Result<Option<u64>, String> {
    let value = match body.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::Bool(false)) => return Ok(None),
        Some(_) => return Err(format!("If specified, {name} must be a number")),
    };
    if value == 0.0 {
        return Ok(None);
    }
    if !value.is_finite() {
        return Err(format!("If specified, {name} must be a number"));
    }
    if value < 0.0 {
        return Err(format!("{name} must be non-negative"));
    }
    if value > configured as f64 {
        return Err(format!(
            "{name} cannot exceed the configured limit of {configured}"
        ));
    }
    Ok(Some(value.ceil() as u64))
}

/// A file's content in its encoding (`utf8` the default, as are unknown names, as in Piston).
fn decode(content: &str, encoding: &str) -> Result<Vec<u8>, String> {
    match encoding {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(content.trim().as_bytes())
            .map_err(|e| format!("not valid base64: {e}")),
        "hex" => {
            let hex = content.trim().as_bytes();
            if !hex.len().is_multiple_of(2) {
                return Err("not valid hex: odd length".into());
            }
            let digit = |b: u8| (b as char).to_digit(16).ok_or("not valid hex".to_string());
            hex.chunks(2)
                .map(|pair| Ok((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
                .collect()
        }
        _ => Ok(content.as_bytes().to_vec()),
    }
}

/// Reads `body`. `interactive`: the WebSocket's `init` (stdin comes later, in `data` frames).
pub fn convert(body: &Value, topology: &Topology, interactive: bool) -> Result<Converted, String> {
    let body = body
        .as_object()
        .ok_or("the request body must be a JSON object")?;
    let language_name = body
        .get("language")
        .and_then(Value::as_str)
        .ok_or("language is required as a string")?;
    let version = body
        .get("version")
        .and_then(Value::as_str)
        .ok_or("version is required as a string")?;
    let files = body
        .get("files")
        .and_then(Value::as_array)
        .ok_or("files is required as an array")?;
    let language = topology
        .language_by_alias(language_name)
        .filter(|l| semver::satisfies(&l.version, version))
        .ok_or_else(|| format!("{language_name}-{version} runtime is unknown"))?;
    if files.is_empty() {
        return Err("files must include at least one utf8 encoded file".into());
    }
    let mut ours = Vec::with_capacity(files.len());
    for (i, file) in files.iter().enumerate() {
        let content = file
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("files[{i}].content is required as a string"))?;
        let encoding = file
            .get("encoding")
            .and_then(Value::as_str)
            .unwrap_or("utf8");
        let bytes = decode(content, encoding).map_err(|e| format!("files[{i}].content is {e}"))?;
        // Piston names an unnamed file `file<i>.code`; our languages build by extension, so the
        // first (the one that runs) takes the language's own file name instead.
        let name = match file.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ if i == 0 => language.file.clone(),
            _ => format!("file{i}.code"),
        };
        ours.push(FileRequest {
            name,
            content: base64::engine::general_purpose::STANDARD.encode(bytes),
            encoding: "base64".into(),
        });
    }
    let args = match body.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(String::from))
            .collect::<Option<Vec<_>>>()
            .ok_or("args must be an array of strings")?,
        Some(_) => return Err("args must be an array of strings".into()),
    };
    let mut stdin = match body.get("stdin") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("stdin must be a string".into()),
    };
    // Piston ends stdin with a newline when it has none (empty stdin included).
    if !interactive && !stdin.ends_with('\n') {
        stdin.push('\n');
    }
    // The compile step's limits are the language's own here; Piston's are checked and accepted.
    let compile = language.compile_limits;
    limit(body, "compile_timeout", compile.wall_time_ms)?;
    limit(body, "compile_cpu_time", compile.cpu_time_ms)?;
    limit(body, "compile_memory_limit", compile.memory_mb << 20)?;
    let max = language.max_limits;
    let run_memory = limit(body, "run_memory_limit", max.memory_mb << 20)?;
    let limits = PartialLimits {
        wall_time_ms: limit(body, "run_timeout", max.wall_time_ms)?,
        cpu_time_ms: limit(body, "run_cpu_time", max.cpu_time_ms)?,
        // Bytes, rounded up to whole MiB.
        memory_mb: run_memory.map(|b| b.div_ceil(1 << 20).max(1)),
        processes: None,
        output_bytes: None,
    };
    let entrypoint = ours.first().map(|f| f.name.clone());
    let request = SubmitRequest {
        language: language.id.clone(),
        source: None,
        files: Some(ours),
        entrypoint,
        stdin,
        stdin_encoding: "utf8".into(),
        args,
        limits,
        interactive,
        judge: None,
        compiler_options: Vec::new(),
        merge_stderr: false,
        callback: None,
    };
    Ok(Converted { request, language })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn topology() -> Topology {
        Topology::from_source_tree().unwrap()
    }

    #[test]
    fn piston_messages_for_missing_fields() {
        let t = topology();
        let err = |b: Value| convert(&b, &t, false).err().unwrap();
        assert_eq!(err(json!({})), "language is required as a string");
        assert_eq!(
            err(json!({"language": "py"})),
            "version is required as a string"
        );
        assert_eq!(
            err(json!({"language": "py", "version": "*"})),
            "files is required as an array"
        );
        assert_eq!(
            err(json!({"language": "cobol", "version": "*", "files": []})),
            "cobol-* runtime is unknown"
        );
        assert_eq!(
            err(json!({"language": "py", "version": "2", "files": [{"content": "x"}]})),
            "py-2 runtime is unknown"
        );
        assert_eq!(
            err(json!({"language": "py", "version": "3", "files": [{}]})),
            "files[0].content is required as a string"
        );
        assert_eq!(
            err(
                json!({"language": "py", "version": "3", "files": [{"content": "x"}], "run_timeout": "1"})
            ),
            "If specified, run_timeout must be a number"
        );
        assert_eq!(
            err(
                json!({"language": "py", "version": "3", "files": [{"content": "x"}], "run_cpu_time": -5})
            ),
            "run_cpu_time must be non-negative"
        );
        assert!(
            err(json!({"language": "py", "version": "3", "files": [{"content": "x"}], "run_timeout": 1e9}))
                .starts_with("run_timeout cannot exceed the configured limit of ")
        );
    }

    #[test]
    fn files_encodings_names_and_stdin() {
        let t = topology();
        let c = convert(
            &json!({"language": "python", "version": "3.x", "stdin": "in",
                    "files": [{"content": "cHJpbnQoMSk=", "encoding": "base64"},
                              {"name": "util.py", "content": "6869", "encoding": "hex"}],
                    "run_memory_limit": 100000000, "run_timeout": 2500}),
            &t,
            false,
        )
        .unwrap();
        let files = c.request.files.unwrap();
        assert_eq!(files[0].name, "main.py");
        assert_eq!(files[1].name, "util.py");
        assert_eq!(files[1].content, "aGk=");
        assert_eq!(c.request.stdin, "in\n");
        assert_eq!(c.request.limits.memory_mb, Some(96));
        assert_eq!(c.request.limits.wall_time_ms, Some(2500));
        let bad = convert(
            &json!({"language": "python", "version": "*", "files": [{"content": "zz", "encoding": "hex"}]}),
            &t,
            false,
        );
        assert!(bad
            .err()
            .unwrap()
            .starts_with("files[0].content is not valid hex"));
        // Multi-byte characters and signs are not hex digits (and never split a character).
        for hostile in ["aéa", "+f", "-1", "é"] {
            let r = convert(
                &json!({"language": "python", "version": "*", "files": [{"content": hostile, "encoding": "hex"}]}),
                &t,
                false,
            );
            assert!(r.is_err(), "{hostile}");
        }
    }
}
