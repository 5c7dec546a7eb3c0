//! Validating a submission and turning it into a job message: pure, so every rule is unit-tested.
//! Errors name the JSON path of the offending field.

use crate::error::ApiError;
pub use crate::judge_submission::Staging;
use crate::strict_json::{self, Fields, Json};
use rce_protocol::bytes::{decode_base64, Base64Bytes};
use rce_protocol::file_names::{self, FileNameError};
use rce_protocol::job::{JobFile, JobMessage};
use rce_protocol::limits::PartialLimits;
use rce_protocol::topology::{Language, Topology};
use rce_protocol::SCHEMA_VERSION;
use std::collections::HashSet;

/// Most files one job may carry.
pub const MAX_FILES: usize = 32;
/// Most program arguments, and the longest one in bytes.
pub const MAX_ARGS: usize = 64;
pub const MAX_ARG_BYTES: usize = 4096;

/// `POST /v1/jobs` as a client writes it (`../shared/api.md`), read by [`parse`].
#[derive(Debug)]
pub struct SubmitRequest {
    pub language: String,
    pub source: Option<String>,
    pub files: Option<Vec<FileRequest>>,
    pub entrypoint: Option<String>,
    pub stdin: String,
    /// `utf8` (default) or `base64`, for input that is not text.
    pub stdin_encoding: String,
    pub args: Vec<String>,
    pub limits: PartialLimits,
    /// Keep the program's stdin open for input sent over the job's WebSocket.
    pub interactive: bool,
    /// Judge mode's fields, when the job has `tests`.
    pub judge: Option<crate::judge_submission::JudgeRequest>,
    /// Extra compile arguments, each on the language's allow-list (`compat.compiler_options`):
    /// only the Judge0 surface sets them (its `compiler_options`).
    pub compiler_options: Vec<String>,
    /// The run's stderr into its stdout: only the Judge0 surface sets it
    /// (`redirect_stderr_to_stdout`).
    pub merge_stderr: bool,
    /// Where the job is sent when it ends (`callback_url`), checked at admission.
    pub callback: Option<crate::webhooks::Callback>,
}

#[derive(Debug)]
pub struct FileRequest {
    pub name: String,
    pub content: String,
    pub encoding: String,
}

const SUBMIT_FIELDS: [&str; 14] = [
    "language",
    "source",
    "files",
    "entrypoint",
    "stdin",
    "stdin_encoding",
    "args",
    "limits",
    "interactive",
    "tests",
    "checker",
    "stop_on_failure",
    "return_output",
    "callback_url",
];
const FILE_FIELDS: [&str; 3] = ["name", "content", "encoding"];
const LIMIT_FIELDS: [&str; 5] = [
    "wall_time_ms",
    "cpu_time_ms",
    "memory_mb",
    "processes",
    "output_bytes",
];

/// Parses the body: exactly one JSON object with nothing after it, each field of its type. A
/// refusal is a 400 `malformed_request` whose `field` is the path of the offending value (`null`
/// when the body as a whole is wrong) and whose message says what was expected and what was
/// given.
pub fn parse(body: &[u8]) -> Result<SubmitRequest, ApiError> {
    let mut job = Fields::of(strict_json::parse_body(body)?, "", "a job")?;
    let language = strict_json::string(
        job.required(
            "language",
            "a language id from GET /v1/languages, as a string",
        )?,
        "language",
        "a language id from GET /v1/languages, as a string",
    )?;
    let source = job
        .optional("source")
        .map(|v| strict_json::string(v, "source", "the program's text, as a string"))
        .transpose()?;
    let files = job
        .optional("files")
        .map(|v| parse_files(v, "files"))
        .transpose()?;
    let entrypoint = job
        .optional("entrypoint")
        .map(|v| strict_json::string(v, "entrypoint", "a file name, as a string"))
        .transpose()?;
    let stdin = job
        .non_null("stdin", "a string")?
        .map(|v| strict_json::string(v, "stdin", "a string"))
        .transpose()?
        .unwrap_or_default();
    let stdin_encoding = job
        .non_null("stdin_encoding", "\"utf8\" or \"base64\"")?
        .map(|v| strict_json::string(v, "stdin_encoding", "\"utf8\" or \"base64\""))
        .transpose()?
        .unwrap_or_else(utf8);
    let args = match job.non_null("args", "an array of strings")? {
        None => Vec::new(),
        Some(v) => strict_json::array(v, "args", "an array of strings")?
            .into_iter()
            .enumerate()
            .map(|(i, a)| strict_json::string(a, &format!("args[{i}]"), "a string"))
            .collect::<Result<_, _>>()?,
    };
    let limits = match job.non_null("limits", "an object of limits")? {
        None => PartialLimits::default(),
        Some(v) => parse_limits_at(v, "limits")?,
    };
    let interactive = job
        .non_null("interactive", "true or false")?
        .map(|v| strict_json::boolean(v, "interactive"))
        .transpose()?
        .unwrap_or(false);
    let callback_url = job
        .non_null("callback_url", "an http or https URL, as a string")?
        .map(|v| strict_json::string(v, "callback_url", "an http or https URL, as a string"))
        .transpose()?;
    let judge = crate::judge_submission::parse(&mut job)?;
    job.finish(&SUBMIT_FIELDS)?;
    Ok(SubmitRequest {
        language,
        source,
        files,
        entrypoint,
        stdin,
        stdin_encoding,
        args,
        limits,
        interactive,
        judge,
        compiler_options: Vec::new(),
        merge_stderr: false,
        callback: callback_url.map(|url| crate::webhooks::Callback {
            url,
            kind: crate::webhooks::CallbackKind::V1,
        }),
    })
}

/// An array of files at `path` (`files`, `checker.files`).
pub(crate) fn parse_files(value: Json, path: &str) -> Result<Vec<FileRequest>, ApiError> {
    strict_json::array(value, path, "an array of files")?
        .into_iter()
        .enumerate()
        .map(|(i, f)| parse_file(f, &format!("{path}[{i}]")))
        .collect()
}

fn parse_file(value: Json, path: &str) -> Result<FileRequest, ApiError> {
    let mut file = Fields::of(value, path, "a file: {\"name\", \"content\", \"encoding\"}")?;
    let name_path = file.path("name");
    let name = strict_json::string(
        file.required("name", "the file's name, as a string")?,
        &name_path,
        "the file's name, as a string",
    )?;
    let content_path = file.path("content");
    let content = strict_json::string(
        file.required("content", "the file's content, as a string")?,
        &content_path,
        "the file's content, as a string",
    )?;
    let encoding_path = file.path("encoding");
    let encoding = file
        .non_null("encoding", "\"utf8\" or \"base64\"")?
        .map(|v| strict_json::string(v, &encoding_path, "\"utf8\" or \"base64\""))
        .transpose()?
        .unwrap_or_else(utf8);
    file.finish(&FILE_FIELDS)?;
    Ok(FileRequest {
        name,
        content,
        encoding,
    })
}

/// Limits by name at `path` (`limits`, `tests[3].limits`).
pub(crate) fn parse_limits_at(value: Json, path: &str) -> Result<PartialLimits, ApiError> {
    let mut limits = Fields::of(value, path, "limits by name")?;
    let mut take = |key: &str| {
        let path = limits.path(key);
        limits
            .optional(key)
            .map(|v| strict_json::whole_number(v, &path))
            .transpose()
    };
    let parsed = PartialLimits {
        wall_time_ms: take("wall_time_ms")?,
        cpu_time_ms: take("cpu_time_ms")?,
        memory_mb: take("memory_mb")?,
        processes: take("processes")?,
        output_bytes: take("output_bytes")?,
    };
    limits.finish(&LIMIT_FIELDS)?;
    Ok(parsed)
}

fn utf8() -> String {
    "utf8".into()
}

/// A plain file name: the shared rule of `rce_protocol::file_names`, which the shim applies too.
pub fn check_file_name(name: &str) -> Result<(), FileNameError> {
    file_names::check(name)
}

/// A base64 decoding failure in words a client can act on (the decoder's own text is "Invalid
/// symbol 33, offset 0.").
pub fn describe_base64_error(e: &base64::DecodeError) -> String {
    use base64::DecodeError::*;
    let shown = |b: u8| {
        if b.is_ascii_graphic() {
            format!("{:?}", b as char)
        } else {
            format!("byte 0x{b:02x}")
        }
    };
    match e {
        InvalidByte(at, b) if *b == b'=' => {
            format!("'=' at offset {at}: padding may only end the text")
        }
        InvalidByte(at, b) => format!(
            "{} at offset {at} is not in the base64 alphabet (A-Z, a-z, 0-9, '+', '/', '=' \
             padding; no whitespace or line breaks)",
            shown(*b)
        ),
        InvalidLength(n) => format!(
            "{n} base64 characters cannot encode whole bytes (the text is cut short, or padded wrongly)"
        ),
        InvalidLastSymbol(at, b) => format!(
            "{} at offset {at} ends the text with bits that encode no byte (the text is cut short or not canonical)",
            shown(*b)
        ),
        InvalidPadding => "the '=' padding is missing or wrong (canonical padding is required)".into(),
    }
}

/// Checks everything and builds the job message for `id`, with the test data a judge-mode
/// submission carried inline, which must be stored before the job is published.
pub fn admit(
    req: SubmitRequest,
    topology: &Topology,
    id: String,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(JobMessage, Language, Staging), ApiError> {
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
    let (files, entrypoint) = program_files(&language, req.source, req.files, req.entrypoint, "")?;
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
    for (i, option) in req.compiler_options.iter().enumerate() {
        if !language.compat.compiler_options.contains(option) {
            let allowed = &language.compat.compiler_options;
            let message = if allowed.is_empty() {
                format!("{} takes no compiler options", language.id)
            } else {
                format!(
                    "compiler option {option:?} is not allowed for {}; allowed: {}",
                    language.id,
                    allowed.join(" ")
                )
            };
            return Err(ApiError::invalid(
                "invalid_compiler_option",
                format!("compiler_options[{i}]"),
                message,
            ));
        }
    }
    let stdin = match req.stdin_encoding.as_str() {
        "utf8" => req.stdin.into_bytes(),
        "base64" => decode_base64(&req.stdin).map_err(|e| {
            ApiError::invalid(
                "invalid_base64",
                "stdin",
                format!("stdin is not valid base64: {}", describe_base64_error(&e)),
            )
        })?,
        other => {
            return Err(ApiError::invalid(
                "invalid_encoding",
                "stdin_encoding",
                format!("encoding {other:?} is not `utf8` or `base64`"),
            ))
        }
    };
    let (limits, judge, staging) = match req.judge {
        None => {
            let limits = req
                .limits
                .resolve(language.default_limits, language.max_limits)
                .map_err(|e| {
                    ApiError::invalid("invalid_limit", e.field().to_string(), e.to_string())
                })?;
            (limits, None, Staging::default())
        }
        Some(judge) => {
            if req.interactive {
                return Err(ApiError::invalid(
                    "invalid_judge_job",
                    "interactive",
                    "a judge-mode job is not interactive: its tests carry its input",
                ));
            }
            if !stdin.is_empty() {
                return Err(ApiError::invalid(
                    "invalid_judge_job",
                    "stdin",
                    "a judge-mode job takes its input from its tests: give each test `stdin` or `stdin_file`",
                ));
            }
            let limits = crate::judge_submission::job_limits(req.limits, &language)?;
            let (spec, staging) =
                crate::judge_submission::admit(judge, topology, &language, req.limits)?;
            (limits, Some(spec), staging)
        }
    };
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
        judge,
        compiler_options: req.compiler_options,
        merge_stderr: req.merge_stderr,
    };
    Ok((job, language, staging))
}

/// A program given as `source` (one file, named by the language's default file name) or
/// `files`, and its entrypoint (given, else the language's default file if there is one, else
/// the first): the job's own (`at` empty) or a custom checker's (`at` = `checker.`).
pub(crate) fn program_files(
    language: &Language,
    source: Option<String>,
    files: Option<Vec<FileRequest>>,
    entrypoint: Option<String>,
    at: &str,
) -> Result<(Vec<JobFile>, String), ApiError> {
    let files = match (source, files) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "ambiguous_source",
                format!("{at}files"),
                format!("give either `{at}source` or `{at}files`, not both"),
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "missing_source",
                format!("{at}source"),
                format!("give the program as `{at}source` (one file) or `{at}files`"),
            ))
        }
        (Some(source), None) => vec![JobFile {
            name: language.file.clone(),
            content: Base64Bytes(source.into_bytes()),
        }],
        (None, Some(files)) => decode_files(files, &format!("{at}files"))?,
    };
    let entrypoint = match entrypoint {
        Some(e) if files.iter().any(|f| f.name == e) => e,
        Some(e) => {
            return Err(ApiError::invalid(
                "unknown_entrypoint",
                format!("{at}entrypoint"),
                format!("{at}entrypoint {e:?} is not one of the files"),
            ))
        }
        None if files.iter().any(|f| f.name == language.file) => language.file.clone(),
        None => files[0].name.clone(),
    };
    Ok((files, entrypoint))
}

/// The files at `at` (`files`, `checker.files`), decoded, with plain unique names.
fn decode_files(files: Vec<FileRequest>, at: &str) -> Result<Vec<JobFile>, ApiError> {
    if files.is_empty() {
        return Err(ApiError::invalid(
            "missing_source",
            at,
            format!("`{at}` is empty"),
        ));
    }
    if files.len() > MAX_FILES {
        return Err(ApiError::invalid(
            "too_many_files",
            at,
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
                    format!("{at}[{i}].name"),
                    format!("file name {:?} {why}", f.name),
                )
            })?;
            if !seen.insert(f.name.clone()) {
                return Err(ApiError::invalid(
                    "duplicate_file_name",
                    format!("{at}[{i}].name"),
                    format!("two files are named {:?}", f.name),
                ));
            }
            let content = match f.encoding.as_str() {
                "utf8" => f.content.into_bytes(),
                "base64" => decode_base64(&f.content).map_err(|e| {
                    ApiError::invalid(
                        "invalid_base64",
                        format!("{at}[{i}].content"),
                        format!(
                            "{at}[{i}].content is not valid base64: {}",
                            describe_base64_error(&e)
                        ),
                    )
                })?,
                other => {
                    return Err(ApiError::invalid(
                        "invalid_encoding",
                        format!("{at}[{i}].encoding"),
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
    use axum::http::StatusCode;

    fn topology() -> Topology {
        Topology::from_source_tree().unwrap()
    }

    fn try_admit(body: &str) -> Result<JobMessage, ApiError> {
        let req = parse(body.as_bytes())?;
        admit(req, &topology(), "id".into(), chrono::Utc::now()).map(|(j, _, _)| j)
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

    #[test]
    fn a_positional_array_is_not_a_job() {
        let e = try_admit(r#"["python","print(7)",null,null,"","utf8",[],{},false]"#).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "malformed_request")
        );
        assert!(!e.message.contains("SubmitRequest"), "{}", e.message);
        assert!(e.message.contains("must be a JSON object"), "{}", e.message);
        let e = try_admit(r#"{"language":"python","files":[["a.py","x"]]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("files[0]"));
        let e =
            try_admit(r#"{"language":"python","source":"x","limits":[1,2,3,4,5]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limits"));
    }

    #[test]
    fn data_after_the_job_is_refused() {
        let e = try_admit(r#"{"language":"python","source":"print(7)"} xyz"#).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, "malformed_request")
        );
        assert!(try_admit("{\"language\":\"python\",\"source\":\"x\"}\n\t ").is_ok());
    }

    #[test]
    fn reserved_names_are_422_naming_the_file() {
        for name in [".tmp", ".cache"] {
            let body = format!(
                r#"{{"language":"python","files":[{{"name":"main.py","content":"x"}},{{"name":"{name}","content":"x"}}]}}"#
            );
            let e = try_admit(&body).unwrap_err();
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(e.code, "invalid_file_name");
            assert_eq!(e.field.as_deref(), Some("files[1].name"));
            assert!(
                e.message.contains(name) && e.message.contains("reserved"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn a_missing_language_names_the_field() {
        let e = try_admit(r#"{"source":"x"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("language"));
        assert!(e.message.contains("language is required"), "{}", e.message);
    }

    #[test]
    fn messages_speak_the_apis_language() {
        let e = try_admit(r#"{"language":"python","source":"x","limits":{"memory_mb":"lots"}}"#)
            .unwrap_err();
        assert_eq!(
            e.message,
            "limits.memory_mb must be a whole number from 0 to 18446744073709551615, but it is the string \"lots\""
        );
        let e = try_admit(r#"{"language":"python","source":"x","limits":{"memory_mb":1e20}}"#)
            .unwrap_err();
        assert!(!e.message.contains("floating point"), "{}", e.message);
        let e = try_admit(r#"{"language":"python","source":"x","args":["a",7]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("args[1]"));
        assert_eq!(
            e.message,
            "args[1] must be a string, but it is the number 7"
        );
        let e = try_admit(r#"{"language":"python","source":"x","stdin":null}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("stdin"));
        let e = try_admit(
            r#"{"language":"python","files":[{"name":"a.py","content":"!!","encoding":"base64"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("files[0].content"));
        assert!(!e.message.contains("Invalid symbol"), "{}", e.message);
        assert!(
            e.message
                .contains("'!' at offset 0 is not in the base64 alphabet"),
            "{}",
            e.message
        );
    }

    #[test]
    fn an_integral_float_is_an_integer() {
        let job = try_admit(
            r#"{"language":"python","source":"x","limits":{"wall_time_ms":2000.0,"memory_mb":64.0}}"#,
        )
        .unwrap();
        assert_eq!((job.limits.wall_time_ms, job.limits.memory_mb), (2000, 64));
        let e = try_admit(r#"{"language":"python","source":"x","limits":{"memory_mb":64.5}}"#)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("limits.memory_mb"));
    }

    #[test]
    fn base64_errors_are_described() {
        for (text, expect) in [
            ("!!!!", "'!' at offset 0"),
            ("QQQQQ", "cannot encode whole bytes"),
            ("QQ", "padding is missing"),
            ("QR==", "encode no byte"),
            ("QQ=A", "padding may only end"),
        ] {
            let e = decode_base64(text).unwrap_err();
            let m = describe_base64_error(&e);
            assert!(m.contains(expect), "{text}: {m}");
        }
    }
}
