//! Validating a submission and turning it into a job message: pure, so every rule is unit-tested.
//! Errors name the JSON path of the offending field.

use crate::error::ApiError;
use axum::http::StatusCode;
use rce_protocol::bytes::{decode_base64, Base64Bytes};
use rce_protocol::job::{JobFile, JobMessage};
use rce_protocol::limits::PartialLimits;
use rce_protocol::topology::{Language, Topology};
use rce_protocol::SCHEMA_VERSION;
use serde::Deserialize;
use std::collections::HashSet;

/// Most files one job may carry.
pub const MAX_FILES: usize = 32;
/// Longest file name, in bytes.
pub const MAX_FILE_NAME: usize = 128;
/// Most program arguments, and the longest one in bytes.
pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 4096;

/// `POST /v1/jobs` as a client writes it (`../shared/api.md`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub language: String,
    pub source: Option<String>,
    pub files: Option<Vec<FileRequest>>,
    pub entrypoint: Option<String>,
    #[serde(default)]
    pub stdin: String,
    /// `utf8` (default) or `base64`, for input that is not text.
    #[serde(default = "utf8")]
    pub stdin_encoding: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub limits: PartialLimits,
    /// Keep the program's stdin open for input sent over the job's WebSocket.
    #[serde(default)]
    pub interactive: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRequest {
    pub name: String,
    pub content: String,
    #[serde(default = "utf8")]
    pub encoding: String,
}

fn utf8() -> String {
    "utf8".into()
}

/// Parses the body; a syntax or type error is a 400 naming where it happened.
pub fn parse(body: &[u8]) -> Result<SubmitRequest, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut err = ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            format!("the body is not a valid job: {inner}"),
        );
        if path != "." {
            err = err.field(path);
        }
        err
    })
}

/// A plain file name: what the shim will create in the workspace, never a path.
pub fn check_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > MAX_FILE_NAME {
        return Err("is too long");
    }
    if name == "." || name == ".." {
        return Err("is not a file name");
    }
    if name.starts_with('-') {
        return Err("starts with '-'");
    }
    if name.contains('/') || name.contains('\\') {
        return Err("contains a path separator");
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("contains a control character");
    }
    Ok(())
}

/// Checks everything and builds the job message for `id`.
pub fn admit(
    req: SubmitRequest,
    topology: &Topology,
    id: String,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(JobMessage, Language), ApiError> {
    let language = topology.language(&req.language).ok_or_else(|| {
        let known: Vec<_> = topology.languages.keys().map(String::as_str).collect();
        ApiError::invalid(
            "unknown_language",
            "language",
            format!(
                "unknown language {:?}; known: {}",
                req.language,
                known.join(", ")
            ),
        )
    })?;
    let files = match (req.source, req.files) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "ambiguous_source",
                "files",
                "give either `source` or `files`, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "missing_source",
                "source",
                "give the program as `source` (one file) or `files`",
            ))
        }
        (Some(source), None) => vec![JobFile {
            name: language.file.clone(),
            content: Base64Bytes(source.into_bytes()),
        }],
        (None, Some(files)) => decode_files(files)?,
    };
    let entrypoint = match req.entrypoint {
        Some(e) if files.iter().any(|f| f.name == e) => e,
        Some(e) => {
            return Err(ApiError::invalid(
                "unknown_entrypoint",
                "entrypoint",
                format!("entrypoint {e:?} is not one of the files"),
            ))
        }
        None if files.iter().any(|f| f.name == language.file) => language.file.clone(),
        None => files[0].name.clone(),
    };
    if req.args.len() > MAX_ARGS {
        return Err(ApiError::invalid(
            "too_many_args",
            "args",
            format!("at most {MAX_ARGS} arguments"),
        ));
    }
    for (i, arg) in req.args.iter().enumerate() {
        if arg.len() > MAX_ARG_BYTES || arg.contains('\0') {
            return Err(ApiError::invalid(
                "invalid_arg",
                format!("args[{i}]"),
                format!("an argument is at most {MAX_ARG_BYTES} bytes and has no NUL"),
            ));
        }
    }
    let stdin = match req.stdin_encoding.as_str() {
        "utf8" => req.stdin.into_bytes(),
        "base64" => decode_base64(&req.stdin).map_err(|e| {
            ApiError::invalid("invalid_base64", "stdin", format!("not valid base64: {e}"))
        })?,
        other => {
            return Err(ApiError::invalid(
                "invalid_encoding",
                "stdin_encoding",
                format!("encoding {other:?} is not `utf8` or `base64`"),
            ))
        }
    };
    let limits = req
        .limits
        .resolve(language.default_limits, language.max_limits)
        .map_err(|e| ApiError::invalid("invalid_limit", e.field().to_string(), e.to_string()))?;
    let job = JobMessage {
        schema: SCHEMA_VERSION,
        id,
        language: language.id.clone(),
        files,
        entrypoint,
        stdin: Base64Bytes(stdin),
        args: req.args,
        limits,
        created_at: now,
        interactive: req.interactive,
    };
    Ok((job, language))
}

fn decode_files(files: Vec<FileRequest>) -> Result<Vec<JobFile>, ApiError> {
    if files.is_empty() {
        return Err(ApiError::invalid(
            "missing_source",
            "files",
            "`files` is empty",
        ));
    }
    if files.len() > MAX_FILES {
        return Err(ApiError::invalid(
            "too_many_files",
            "files",
            format!("at most {MAX_FILES} files"),
        ));
    }
    let mut seen = HashSet::new();
    files
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            check_file_name(&f.name).map_err(|why| {
                ApiError::invalid(
                    "invalid_file_name",
                    format!("files[{i}].name"),
                    format!("file name {:?} {why}", f.name),
                )
            })?;
            if !seen.insert(f.name.clone()) {
                return Err(ApiError::invalid(
                    "duplicate_file_name",
                    format!("files[{i}].name"),
                    format!("two files are named {:?}", f.name),
                ));
            }
            let content = match f.encoding.as_str() {
                "utf8" => f.content.into_bytes(),
                "base64" => decode_base64(&f.content).map_err(|e| {
                    ApiError::invalid(
                        "invalid_base64",
                        format!("files[{i}].content"),
                        format!("not valid base64: {e}"),
                    )
                })?,
                other => {
                    return Err(ApiError::invalid(
                        "invalid_encoding",
                        format!("files[{i}].encoding"),
                        format!("encoding {other:?} is not `utf8` or `base64`"),
                    ))
                }
            };
            Ok(JobFile {
                name: f.name,
                content: Base64Bytes(content),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology::from_source_tree().unwrap()
    }

    fn try_admit(body: &str) -> Result<JobMessage, ApiError> {
        let req = parse(body.as_bytes())?;
        admit(req, &topology(), "id".into(), chrono::Utc::now()).map(|(j, _)| j)
    }

    #[test]
    fn source_becomes_the_default_file() {
        let job = try_admit(r#"{"language":"python","source":"print(1)","stdin":"x"}"#).unwrap();
        assert_eq!(job.files[0].name, "main.py");
        assert_eq!(job.entrypoint, "main.py");
        assert_eq!(job.stdin.0, b"x");
        assert_eq!(
            job.limits,
            topology().language("python").unwrap().default_limits
        );
    }

    #[test]
    fn malformed_json_is_400() {
        let e = try_admit(r#"{"language":"python","#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.code, "malformed_request");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let e = try_admit(r#"{"language":"python","source":"x","limits":{"memory_mb":"lots"}}"#)
            .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("limits.memory_mb"));
    }

    #[test]
    fn unknown_field_is_400() {
        let e = try_admit(r#"{"language":"python","source":"x","sauce":1}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("sauce"), "{}", e.message);
    }

    #[test]
    fn unknown_language_is_422_on_language() {
        let e = try_admit(r#"{"language":"cobol","source":"x"}"#).unwrap_err();
        assert_eq!(
            (e.status, e.code, e.field.as_deref()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_language",
                Some("language")
            )
        );
    }

    #[test]
    fn missing_source_is_422() {
        let e = try_admit(r#"{"language":"python"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("missing_source", Some("source"))
        );
    }

    #[test]
    fn limit_above_maximum_names_field_and_max() {
        let e = try_admit(r#"{"language":"python","source":"x","limits":{"memory_mb":99999}}"#)
            .unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.field.as_deref(), Some("limits.memory_mb"));
        assert!(e.message.contains("1024"), "{}", e.message);
    }

    #[test]
    fn files_with_base64_and_entrypoint() {
        let job = try_admit(
            r#"{"language":"python","files":[{"name":"lib.py","content":"eD0x","encoding":"base64"},{"name":"run.py","content":"import lib"}],"entrypoint":"run.py"}"#,
        )
        .unwrap();
        assert_eq!(job.files[0].content.0, b"x=1");
        assert_eq!(job.entrypoint, "run.py");
    }

    #[test]
    fn bad_file_names_are_refused() {
        for name in ["../x", "a/b", "", "..", "-rf", "a\u{0}b"] {
            assert!(check_file_name(name).is_err(), "{name:?}");
        }
        assert!(check_file_name("Main.java").is_ok());
        let e = try_admit(r#"{"language":"python","files":[{"name":"../etc","content":"x"}]}"#)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("files[0].name"));
    }

    #[test]
    fn stdin_may_be_base64() {
        let job = try_admit(
            r#"{"language":"python","source":"x","stdin":"/wA=","stdin_encoding":"base64"}"#,
        )
        .unwrap();
        assert_eq!(job.stdin.0, [0xff, 0x00]);
        let e =
            try_admit(r#"{"language":"python","source":"x","stdin":"x","stdin_encoding":"hex"}"#)
                .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("stdin_encoding"));
    }

    #[test]
    fn entrypoint_must_exist() {
        let e = try_admit(
            r#"{"language":"python","files":[{"name":"a.py","content":"x"}],"entrypoint":"b.py"}"#,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("entrypoint"));
    }
}
