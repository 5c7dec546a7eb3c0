//! Judge mode in a submission (`tests`, `checker`, `stop_on_failure`, `return_output`): read,
//! then validated into a `JudgeSpec` whose tests name their data by file id. Pure, like
//! `submission`: inline data only gets its id here; the route stores it (and checks that the
//! ids a client named are stored) before the job is published.

use crate::error::ApiError;
use crate::strict_json::{self, Fields, Json};
use crate::submission::{describe_base64_error, parse_files, program_files, FileRequest};
use rce_files::FileId;
use rce_protocol::bytes::decode_base64;
use rce_protocol::judge::{
    default_wall_ms, Checker, CustomChecker, Dialect, JudgeSpec, TestSpec, MAX_TESTS,
};
use rce_protocol::limits::{Limits, PartialLimits};
use rce_protocol::topology::{Language, Topology};

/// The longest test name, in bytes.
pub const MAX_TEST_NAME_BYTES: usize = 128;
/// The most points one test may be worth.
pub const MAX_POINTS: f64 = 1e9;

/// A custom checker's limits per test, before its language's maximum caps them.
pub const CHECKER_LIMITS: Limits = Limits {
    wall_time_ms: 10_000,
    cpu_time_ms: 5_000,
    memory_mb: 256,
    processes: 16,
    output_bytes: 65_536,
};

/// The judge-mode fields of a submission as the client wrote them.
#[derive(Debug, Default)]
pub struct JudgeRequest {
    pub tests: Vec<TestRequest>,
    pub checker: Option<CheckerRequest>,
    pub stop_on_failure: bool,
    pub return_output: bool,
}

#[derive(Debug, Default)]
pub struct TestRequest {
    pub name: Option<String>,
    pub stdin: Option<String>,
    pub stdin_encoding: Option<String>,
    pub stdin_file: Option<String>,
    pub expected: Option<String>,
    pub expected_encoding: Option<String>,
    pub expected_file: Option<String>,
    pub points: Option<f64>,
    pub limits: PartialLimits,
}

#[derive(Debug)]
pub enum CheckerRequest {
    BuiltIn(Checker),
    Custom {
        language: String,
        source: Option<String>,
        files: Option<Vec<FileRequest>>,
        entrypoint: Option<String>,
        dialect: String,
    },
}

/// The judge-mode fields this module reads from a job object.
pub const FIELDS: [&str; 4] = ["tests", "checker", "stop_on_failure", "return_output"];
const TEST_FIELDS: [&str; 9] = [
    "name",
    "stdin",
    "stdin_encoding",
    "stdin_file",
    "expected",
    "expected_encoding",
    "expected_file",
    "points",
    "limits",
];

/// Takes the judge-mode fields out of `job`: `None` when there are none (a plain job); a
/// `checker` or `stop_on_failure` without `tests` is refused rather than silently ignored.
pub fn parse(job: &mut Fields) -> Result<Option<JudgeRequest>, ApiError> {
    let tests = job
        .non_null("tests", "an array of tests")?
        .map(|v| {
            strict_json::array(v, "tests", "an array of tests")?
                .into_iter()
                .enumerate()
                .map(|(i, t)| parse_test(t, &format!("tests[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let checker = job
        .non_null("checker", "a checker object")?
        .map(parse_checker)
        .transpose()?;
    let flag = |job: &mut Fields, key: &str| -> Result<Option<bool>, ApiError> {
        let path = job.path(key);
        job.non_null(key, "true or false")?
            .map(|v| strict_json::boolean(v, &path))
            .transpose()
    };
    let stop_on_failure = flag(job, "stop_on_failure")?;
    let return_output = flag(job, "return_output")?;
    let Some(tests) = tests else {
        let given = [
            ("checker", checker.is_some()),
            ("stop_on_failure", stop_on_failure.is_some()),
            ("return_output", return_output.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(_, given)| *given) {
            return Err(ApiError::invalid(
                "missing_tests",
                *field,
                format!("{field} is a judge-mode field: it needs `tests`"),
            ));
        }
        return Ok(None);
    };
    Ok(Some(JudgeRequest {
        tests,
        checker,
        stop_on_failure: stop_on_failure.unwrap_or(false),
        return_output: return_output.unwrap_or(false),
    }))
}

fn parse_test(value: Json, path: &str) -> Result<TestRequest, ApiError> {
    let mut t = Fields::of(value, path, "a test")?;
    let text = |t: &mut Fields, key: &str, expected: &str| -> Result<Option<String>, ApiError> {
        let p = t.path(key);
        t.non_null(key, expected)?
            .map(|v| strict_json::string(v, &p, expected))
            .transpose()
    };
    let name = text(&mut t, "name", "a string")?;
    let stdin = text(&mut t, "stdin", "a string")?;
    let stdin_encoding = text(&mut t, "stdin_encoding", "\"utf8\" or \"base64\"")?;
    let stdin_file = text(&mut t, "stdin_file", "a file id (\"sha256:...\")")?;
    let expected = text(&mut t, "expected", "a string")?;
    let expected_encoding = text(&mut t, "expected_encoding", "\"utf8\" or \"base64\"")?;
    let expected_file = text(&mut t, "expected_file", "a file id (\"sha256:...\")")?;
    let points_path = t.path("points");
    let points = t
        .non_null("points", "a number >= 0")?
        .map(|v| strict_json::number(v, &points_path, "a number >= 0"))
        .transpose()?;
    let limits = match t.non_null("limits", "an object of limits")? {
        None => PartialLimits::default(),
        Some(v) => crate::submission::parse_limits_at(v, &format!("{path}.limits"))?,
    };
    t.finish(&TEST_FIELDS)?;
    Ok(TestRequest {
        name,
        stdin,
        stdin_encoding,
        stdin_file,
        expected,
        expected_encoding,
        expected_file,
        points,
        limits,
    })
}

fn parse_checker(value: Json) -> Result<CheckerRequest, ApiError> {
    let mut c = Fields::of(value, "checker", "a checker: {\"type\": ...}")?;
    const TYPES: &str = "\"exact\", \"lines\", \"tokens\", \"float\" or \"custom\"";
    let kind = strict_json::string(c.required("type", TYPES)?, "checker.type", TYPES)?;
    let built_in = match kind.as_str() {
        "exact" => {
            c.finish(&["type"])?;
            Checker::Exact {}
        }
        "lines" => {
            c.finish(&["type"])?;
            Checker::Lines {}
        }
        "tokens" => {
            let case_sensitive = c
                .non_null("case_sensitive", "true or false")?
                .map(|v| strict_json::boolean(v, "checker.case_sensitive"))
                .transpose()?
                .unwrap_or(true);
            c.finish(&["type", "case_sensitive"])?;
            Checker::Tokens { case_sensitive }
        }
        "float" => {
            let mut tolerance = |key: &str| {
                let path = c.path(key);
                c.non_null(key, "a number >= 0")?
                    .map(|v| strict_json::number(v, &path, "a number >= 0"))
                    .transpose()
            };
            let abs_tolerance = tolerance("abs_tolerance")?;
            let rel_tolerance = tolerance("rel_tolerance")?;
            c.finish(&["type", "abs_tolerance", "rel_tolerance"])?;
            let checker = Checker::Float {
                abs_tolerance,
                rel_tolerance,
            };
            if let Some((field, why)) = checker.invalid() {
                return Err(ApiError::invalid(
                    "invalid_checker",
                    format!("checker.{field}"),
                    format!("checker.{field} {why}"),
                ));
            }
            checker
        }
        "custom" => {
            let language = strict_json::string(
                c.required("language", "a language id, as a string")?,
                "checker.language",
                "a language id, as a string",
            )?;
            let source = c
                .optional("source")
                .map(|v| strict_json::string(v, "checker.source", "the checker's text"))
                .transpose()?;
            let files = c
                .optional("files")
                .map(|v| parse_files(v, "checker.files"))
                .transpose()?;
            let entrypoint = c
                .optional("entrypoint")
                .map(|v| strict_json::string(v, "checker.entrypoint", "a file name"))
                .transpose()?;
            let dialect = strict_json::string(
                c.required("dialect", "\"testlib\" or \"kattis\"")?,
                "checker.dialect",
                "\"testlib\" or \"kattis\"",
            )?;
            c.finish(&[
                "type",
                "language",
                "source",
                "files",
                "entrypoint",
                "dialect",
            ])?;
            return Ok(CheckerRequest::Custom {
                language,
                source,
                files,
                entrypoint,
                dialect,
            });
        }
        other => {
            return Err(ApiError::invalid(
                "unknown_checker",
                "checker.type",
                format!("checker type {other:?} is not one of {TYPES}"),
            ))
        }
    };
    Ok(CheckerRequest::BuiltIn(built_in))
}

/// Test data a submission carried inline: stored by the route under its id before the job is
/// published.
#[derive(Debug, Default)]
pub struct Staging {
    pub uploads: Vec<(FileId, Vec<u8>)>,
    /// Ids the client named, with the field that named them, to check that they are stored.
    pub references: Vec<(String, FileId)>,
    /// Bytes of the inline inputs (the referenced ones are added when they are looked up).
    pub inline_input_bytes: u64,
    /// Bytes of the inline expected outputs, counted once per test that names them.
    pub inline_expected_bytes: u64,
}

impl Staging {
    fn inline(&mut self, bytes: Vec<u8>) -> FileId {
        let id = FileId::of(&bytes);
        if !self.uploads.iter().any(|(known, _)| *known == id) {
            self.uploads.push((id.clone(), bytes));
        }
        id
    }
}

/// Validates the judge-mode part of a job in `language` whose resolved run limits are `job`
/// (from the client's `requested`).
pub fn admit(
    req: JudgeRequest,
    topology: &Topology,
    language: &Language,
    requested: PartialLimits,
) -> Result<(JudgeSpec, Staging), ApiError> {
    if req.tests.is_empty() || req.tests.len() > MAX_TESTS {
        return Err(ApiError::invalid(
            "invalid_tests",
            "tests",
            format!(
                "tests must hold 1 to {MAX_TESTS} tests, but it holds {}",
                req.tests.len()
            ),
        ));
    }
    let mut staging = Staging::default();
    let mut tests = Vec::with_capacity(req.tests.len());
    for (i, t) in req.tests.into_iter().enumerate() {
        let path = format!("tests[{i}]");
        let name = match t.name {
            None => (i + 1).to_string(),
            Some(n) if n.is_empty() || n.len() > MAX_TEST_NAME_BYTES || n.chars().any(char::is_control) => {
                return Err(ApiError::invalid(
                    "invalid_test_name",
                    format!("{path}.name"),
                    format!("a test name is 1 to {MAX_TEST_NAME_BYTES} bytes without control characters"),
                ))
            }
            Some(n) => n,
        };
        let stdin = data(
            &mut staging,
            &path,
            ("stdin", t.stdin, t.stdin_encoding),
            ("stdin_file", t.stdin_file),
            true,
        )?
        .expect("an input always exists");
        let expected = data(
            &mut staging,
            &path,
            ("expected", t.expected, t.expected_encoding),
            ("expected_file", t.expected_file),
            false,
        )?;
        let points = t.points.unwrap_or(1.0);
        if !(0.0..=MAX_POINTS).contains(&points) {
            return Err(ApiError::invalid(
                "invalid_points",
                format!("{path}.points"),
                format!("points must be a number from 0 to {MAX_POINTS}, but it is {points}"),
            ));
        }
        let limits = test_limits(t.limits, requested, language).map_err(|(field, message)| {
            ApiError::invalid("invalid_limit", format!("{path}.{field}"), message)
        })?;
        tests.push(TestSpec {
            name,
            stdin,
            expected,
            points,
            limits,
        });
    }
    let (checker, custom_checker) = match req.checker {
        None => (Checker::default(), None),
        Some(CheckerRequest::BuiltIn(c)) => (c, None),
        Some(CheckerRequest::Custom {
            language,
            source,
            files,
            entrypoint,
            dialect,
        }) => {
            let custom = custom_checker(topology, language, source, files, entrypoint, &dialect)?;
            (Checker::default(), Some(custom))
        }
    };
    Ok((
        JudgeSpec {
            tests,
            checker,
            custom_checker,
            stop_on_failure: req.stop_on_failure,
            return_output: req.return_output,
        },
        staging,
    ))
}

/// One of a test's two data (its input, or its expected output): inline text (stored as a
/// file) or a file id, not both. `None` when neither is given and the data may be absent; an
/// absent input is empty.
fn data(
    staging: &mut Staging,
    path: &str,
    (inline_key, inline, encoding): (&str, Option<String>, Option<String>),
    (file_key, file): (&str, Option<String>),
    is_input: bool,
) -> Result<Option<String>, ApiError> {
    let encoding_field = format!("{path}.{inline_key}_encoding");
    let encoding = match encoding.as_deref().unwrap_or("utf8") {
        e @ ("utf8" | "base64") => e.to_string(),
        other => {
            return Err(ApiError::invalid(
                "invalid_encoding",
                encoding_field,
                format!("encoding {other:?} is not `utf8` or `base64`"),
            ))
        }
    };
    match (inline, file) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "ambiguous_test_data",
            format!("{path}.{file_key}"),
            format!("give either {inline_key} or {file_key}, not both"),
        )),
        (None, Some(id)) => {
            let field = format!("{path}.{file_key}");
            let parsed = FileId::parse(&id).map_err(|e| {
                ApiError::invalid(
                    "invalid_file_id",
                    field.clone(),
                    format!("{field} {id:?} is not a file id: {e}"),
                )
            })?;
            let text = parsed.as_str().to_string();
            staging.references.push((field, parsed));
            Ok(Some(text))
        }
        (Some(text), None) => {
            let bytes = if encoding == "utf8" {
                text.into_bytes()
            } else {
                decode_base64(&text).map_err(|e| {
                    ApiError::invalid(
                        "invalid_base64",
                        format!("{path}.{inline_key}"),
                        format!(
                            "{path}.{inline_key} is not valid base64: {}",
                            describe_base64_error(&e)
                        ),
                    )
                })?
            };
            if is_input {
                staging.inline_input_bytes += bytes.len() as u64;
            } else {
                staging.inline_expected_bytes += bytes.len() as u64;
            }
            Ok(Some(staging.inline(bytes).as_str().to_string()))
        }
        (None, None) if is_input => Ok(Some(staging.inline(Vec::new()).as_str().to_string())),
        (None, None) => Ok(None),
    }
}

/// A test's limits: its own over the job's (as the client gave them) over the language's
/// defaults, except that a wall limit nobody gave follows the CPU limit
/// ([`default_wall_ms`]). `Err` names the field under the test's path.
fn test_limits(
    own: PartialLimits,
    job: PartialLimits,
    language: &Language,
) -> Result<Limits, (String, String)> {
    let merged = PartialLimits {
        wall_time_ms: own.wall_time_ms.or(job.wall_time_ms),
        cpu_time_ms: own.cpu_time_ms.or(job.cpu_time_ms),
        memory_mb: own.memory_mb.or(job.memory_mb),
        processes: own.processes.or(job.processes),
        output_bytes: own.output_bytes.or(job.output_bytes),
    };
    let mut resolved = merged
        .resolve(language.default_limits, language.max_limits)
        .map_err(|e| (e.field().to_string(), e.to_string()))?;
    if merged.wall_time_ms.is_none() {
        resolved.wall_time_ms =
            default_wall_ms(resolved.cpu_time_ms, language.max_limits.wall_time_ms)
                .max(rce_protocol::limits::MINIMUM.wall_time_ms);
    }
    Ok(resolved)
}

/// The job-level run limits in judge mode: as for a plain job, but with the wall limit
/// following the CPU limit when the client gave none (as each test's does).
pub fn job_limits(requested: PartialLimits, language: &Language) -> Result<Limits, ApiError> {
    test_limits(PartialLimits::default(), requested, language)
        .map_err(|(field, message)| ApiError::invalid("invalid_limit", field, message))
}

fn custom_checker(
    topology: &Topology,
    language: String,
    source: Option<String>,
    files: Option<Vec<FileRequest>>,
    entrypoint: Option<String>,
    dialect: &str,
) -> Result<CustomChecker, ApiError> {
    let lang = topology.language(&language).ok_or_else(|| {
        ApiError::invalid(
            "unknown_language",
            "checker.language",
            format!("unknown checker language {language:?}"),
        )
    })?;
    let dialect = match dialect {
        "testlib" => Dialect::Testlib,
        "kattis" => Dialect::Kattis,
        other => {
            return Err(ApiError::invalid(
                "invalid_checker",
                "checker.dialect",
                format!("dialect {other:?} is not \"testlib\" or \"kattis\""),
            ))
        }
    };
    let (files, entrypoint) = program_files(&lang, source, files, entrypoint, "checker.")?;
    let max = lang.max_limits;
    let limits = Limits {
        wall_time_ms: CHECKER_LIMITS.wall_time_ms.min(max.wall_time_ms),
        cpu_time_ms: CHECKER_LIMITS.cpu_time_ms.min(max.cpu_time_ms),
        memory_mb: CHECKER_LIMITS.memory_mb.min(max.memory_mb),
        processes: CHECKER_LIMITS.processes.min(max.processes),
        output_bytes: CHECKER_LIMITS.output_bytes.min(max.output_bytes),
    };
    Ok(CustomChecker {
        language: lang.id.clone(),
        files,
        entrypoint,
        dialect,
        limits,
    })
}

#[cfg(test)]
mod tests {
    use crate::error::ApiError;
    use crate::submission::{admit, parse, Staging};
    use axum::http::StatusCode;
    use rce_protocol::job::JobMessage;
    use rce_protocol::judge::{Checker, Dialect};
    use rce_protocol::topology::Topology;

    fn try_admit(body: &str) -> Result<(JobMessage, Staging), ApiError> {
        let topology = Topology::from_source_tree().unwrap();
        let req = parse(body.as_bytes())?;
        admit(req, &topology, "id".into(), chrono::Utc::now()).map(|(j, _, s)| (j, s))
    }

    fn refused(body: &str) -> (StatusCode, String) {
        let e = try_admit(body).unwrap_err();
        (e.status, e.field.unwrap_or_default())
    }

    #[test]
    fn tests_get_names_points_ids_and_limits() {
        let (job, staging) = try_admit(
            r#"{"language":"python","source":"x","limits":{"cpu_time_ms":1000},
                "tests":[{"stdin":"1 2","expected":"3"},{"name":"big","stdin":"1 2","points":5,"limits":{"cpu_time_ms":2000,"wall_time_ms":9000}}]}"#,
        )
        .unwrap();
        let judge = job.judge.unwrap();
        let (a, b) = (&judge.tests[0], &judge.tests[1]);
        assert_eq!((a.name.as_str(), a.points), ("1", 1.0));
        assert_eq!((b.name.as_str(), b.points), ("big", 5.0));
        assert_eq!(a.stdin, b.stdin, "the same input is one file");
        assert_eq!(
            staging.uploads.len(),
            2,
            "the input and the answer, once each"
        );
        assert!(b.expected.is_none());
        assert_eq!((a.limits.cpu_time_ms, a.limits.wall_time_ms), (1000, 3000));
        assert_eq!((b.limits.cpu_time_ms, b.limits.wall_time_ms), (2000, 9000));
        assert_eq!(
            job.limits.wall_time_ms, 3000,
            "the job's wall follows its CPU too"
        );
        assert_eq!(judge.checker, Checker::Lines {});
        assert!(!judge.stop_on_failure && !judge.return_output);
    }

    #[test]
    fn references_are_checked_by_the_route_and_named_by_field() {
        let id = format!("sha256:{}", "0".repeat(64));
        let (job, staging) = try_admit(&format!(
            r#"{{"language":"python","source":"x","tests":[{{"stdin_file":"{id}","expected_file":"{id}"}}]}}"#
        ))
        .unwrap();
        assert_eq!(job.judge.unwrap().tests[0].stdin, id);
        let fields: Vec<_> = staging.references.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["tests[0].stdin_file", "tests[0].expected_file"]);
        assert_eq!(staging.inline_input_bytes, 0);
    }

    #[test]
    fn refusals_name_the_field() {
        for (body, field) in [
            (r#"{"language":"python","source":"x","tests":[]}"#, "tests"),
            (
                r#"{"language":"python","source":"x","return_output":true}"#,
                "return_output",
            ),
            (
                r#"{"language":"python","source":"x","tests":[{"name":""}]}"#,
                "tests[0].name",
            ),
            (
                r#"{"language":"python","source":"x","tests":[{},{"stdin":"a","stdin_file":"sha256:00"}]}"#,
                "tests[1].stdin_file",
            ),
            (
                r#"{"language":"python","source":"x","tests":[{"expected_encoding":"hex"}]}"#,
                "tests[0].expected_encoding",
            ),
            (
                r#"{"language":"python","source":"x","tests":[{"stdin":"!","stdin_encoding":"base64"}]}"#,
                "tests[0].stdin",
            ),
            (
                r#"{"language":"python","source":"x","tests":[{"points":1e10}]}"#,
                "tests[0].points",
            ),
            (
                r#"{"language":"python","source":"x","tests":[{"limits":{"cpu_time_ms":1}}]}"#,
                "tests[0].limits.cpu_time_ms",
            ),
            (
                r#"{"language":"python","source":"x","tests":[{}],"interactive":true}"#,
                "interactive",
            ),
            (
                r#"{"language":"python","source":"x","tests":[{}],"checker":{"type":"tokens","case":1}}"#,
                "checker.case",
            ),
            (
                r#"{"language":"python","source":"x","tests":[{}],"checker":{"type":"custom","language":"cobol","source":"x","dialect":"testlib"}}"#,
                "checker.language",
            ),
            (
                r#"{"language":"python","source":"x","tests":[{}],"checker":{"type":"custom","language":"cpp","source":"x","dialect":"icpc"}}"#,
                "checker.dialect",
            ),
            (
                r#"{"language":"python","source":"x","tests":[{}],"checker":{"type":"custom","language":"cpp","dialect":"kattis"}}"#,
                "checker.source",
            ),
            (
                r#"{"language":"python","source":"x","tests":[{}],"checker":{"type":"custom","language":"cpp","dialect":"kattis","files":[{"name":"../x","content":""}]}}"#,
                "checker.files[0].name",
            ),
        ] {
            let (status, got) = refused(body);
            assert!(status.is_client_error(), "{body}");
            assert_eq!(got, field, "{body}");
        }
    }

    #[test]
    fn a_custom_checker_gets_its_files_entrypoint_and_capped_limits() {
        let (job, _) = try_admit(
            r#"{"language":"python","source":"x","tests":[{}],
                "checker":{"type":"custom","language":"cpp","dialect":"testlib",
                           "files":[{"name":"testlib.h","content":"//"},{"name":"check.cpp","content":"int main(){}"}],"entrypoint":"check.cpp"}}"#,
        )
        .unwrap();
        let custom = job.judge.unwrap().custom_checker.unwrap();
        assert_eq!(
            (custom.language.as_str(), custom.entrypoint.as_str()),
            ("cpp", "check.cpp")
        );
        assert_eq!(custom.dialect, Dialect::Testlib);
        assert_eq!(custom.files.len(), 2);
        assert!(custom.limits.cpu_time_ms <= super::CHECKER_LIMITS.cpu_time_ms);
    }
}
