//! `topology.yaml`: the exchanges, queues and languages the fleet runs, loaded once and shared.

use crate::argv_template::{self, StepContext};
use crate::limits::{Limits, PartialLimits};
use crate::shim::{ShimRecord, StepOutcome, Termination};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Where binaries look for the topology when `RCE_TOPOLOGY` is unset: the repository root, which
/// is the working directory of `make up`, `make test` and the containers' build.
pub const DEFAULT_PATH: &str = "topology.yaml";

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid topology: {source}")]
    Parse {
        path: String,
        source: serde_yaml::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub schema: u32,
    pub messaging: Messaging,
    pub limits: LimitTable,
    pub sandbox: Sandbox,
    /// Keyed by language id (`python`, `cpp`, ...): the id clients send and routing keys use.
    pub languages: BTreeMap<String, LanguageSpec>,
}

/// Names and policies of the RabbitMQ topology (see design.md, "Messaging").
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Messaging {
    pub jobs_exchange: String,
    pub job_queue_prefix: String,
    pub results_exchange: String,
    pub recorder_queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub delivery_limit: u32,
    pub max_length: u32,
}

impl Messaging {
    pub fn job_queue(&self, language: &str) -> String {
        format!("{}{language}", self.job_queue_prefix)
    }
    pub fn job_routing_key(language: &str) -> String {
        format!("job.{language}")
    }
    pub fn result_routing_key(language: &str) -> String {
        format!("result.{language}")
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitTable {
    pub default: Limits,
    pub max: Limits,
    pub compile: Limits,
}

/// Hardening knobs applied to every warm container.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sandbox {
    pub cpus: f64,
    pub workspace_tmpfs_mb: u64,
    pub tmp_tmpfs_mb: u64,
    pub tmpfs_inodes: u64,
    pub uid_base: u32,
    pub uid_span: u32,
    pub max_jobs_per_container: u64,
    pub open_files: u64,
    pub file_size_mb: u64,
    pub capabilities: Vec<String>,
    /// Added to `capabilities` where the engine's host can grant them (the runner checks its
    /// own bounding set, on the same host); without them the sandbox still holds, with one
    /// defense fewer (docs/security.md, "Metering").
    #[serde(default)]
    pub optional_capabilities: Vec<String>,
    pub runtime: String,
    /// How the runner hands a job to a warm container, unless a language says otherwise.
    #[serde(default)]
    pub exec_mode: ExecMode,
}

/// How the runner hands a job to the shim in a warm container. Both modes run the same job
/// code (workspace, uid drop, limits, cleanup, verification); they differ only in how the job
/// line gets there (docs/architecture.md, "Agent mode").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecMode {
    /// The shim is the container's long-lived main process; the runner writes each job on the
    /// container's attached stdin and the shim forks it. Costs about what the program costs.
    #[default]
    Agent,
    /// One `docker exec` of the shim per job: tens of milliseconds of engine and runc work per
    /// job, but nothing stays between jobs except the container itself.
    Exec,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    #[serde(default)]
    pub default: PartialLimits,
    #[serde(default)]
    pub max: PartialLimits,
    #[serde(default)]
    pub compile: PartialLimits,
}

/// One language as written in the file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageSpec {
    pub name: String,
    pub version: String,
    /// Image repository name; the tag is computed by the image build (see `image_ref`).
    pub image: String,
    /// Folder (relative to the repository root) holding the image's Dockerfile.
    pub build: String,
    /// Default source file name, also the entrypoint when a client sends `source`.
    pub file: String,
    #[serde(default)]
    pub compile: Option<Vec<String>>,
    pub run: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Memory the language's runtime takes outside its heap (measured: see docs/languages.md),
    /// subtracted from a step's limit to give `{heap_mb}`.
    #[serde(default)]
    pub runtime_overhead_mb: u64,
    /// How the runtime says its own heap ceiling (`{heap_mb}`) was reached, for runtimes that
    /// stop there before the kernel's limit does.
    #[serde(default)]
    pub out_of_memory: Option<OutOfMemorySign>,
    /// Warm containers kept per runner.
    pub pool: usize,
    #[serde(default)]
    pub limits: LimitOverrides,
    /// OCI runtime for this language's containers, instead of `sandbox.runtime`: e.g. `runsc`
    /// (gVisor) for the languages most exposed to kernel exploits, where the engine has it.
    #[serde(default)]
    pub runtime: Option<String>,
    /// `x-max-length` of this language's job queue, instead of `messaging.max_length`: the
    /// backlog past which submissions get 503 + Retry-After. Size it to what the fleet drains
    /// within a client's patience (queued jobs x seconds per job / runners).
    #[serde(default)]
    pub queue_max_length: Option<u32>,
    /// `agent` or `exec`, instead of `sandbox.exec_mode`.
    #[serde(default)]
    pub exec_mode: Option<ExecMode>,
    /// The compatibility surfaces' names for it (docs/compatibility.md).
    #[serde(default)]
    pub compat: CompatNames,
}

/// How the Judge0 and Piston surfaces name a language.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CompatNames {
    /// Judge0 CE language ids this language answers to, the closest Judge0 language first (the
    /// one it is listed under first). Several, because Judge0's clients pick different ids for
    /// the same language (its SDK sends 52 for C++, its docs use 54).
    #[serde(default)]
    pub judge0_ids: Vec<u32>,
    /// Piston's aliases (its `language` may be the id or any of these).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Compiler options a Judge0 `compiler_options` may hold, each a whole argument (an
    /// allow-list: anything else is refused). Passed as argv before the sources, never through a
    /// shell.
    #[serde(default)]
    pub compiler_options: Vec<String>,
}

/// A language with its limits merged over the global table: what api and runner use.
#[derive(Clone, Debug, Serialize)]
pub struct Language {
    pub id: String,
    pub name: String,
    pub version: String,
    pub image: String,
    pub build: String,
    pub file: String,
    pub compile: Option<Vec<String>>,
    pub run: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub runtime_overhead_mb: u64,
    pub out_of_memory: Option<OutOfMemorySign>,
    pub pool: usize,
    pub default_limits: Limits,
    pub max_limits: Limits,
    pub compile_limits: Limits,
    /// The OCI runtime its containers run under (its own or the sandbox's).
    pub runtime: String,
    /// `x-max-length` of its job queue (its own or `messaging.max_length`).
    pub queue_max_length: u32,
    /// How its jobs reach its containers (its own or the sandbox's).
    pub exec_mode: ExecMode,
    pub compat: CompatNames,
}

/// The tag every image is built and run under; bump when the image contract changes.
pub const IMAGE_TAG: &str = "latest";

impl Language {
    pub fn image_ref(&self) -> String {
        format!("{}:{IMAGE_TAG}", self.image)
    }
    pub fn is_compiled(&self) -> bool {
        self.compile.is_some()
    }
    /// The compile step's argv for `program`, if the language compiles (under its compile limits).
    pub fn compile_argv(&self, program: &Program<'_>) -> Option<Vec<String>> {
        let ctx = self.context(program, self.compile_limits.memory_mb);
        self.compile
            .as_ref()
            .map(|c| argv_template::expand_argv(c, &ctx))
    }

    /// The run step's argv for `program` under a memory limit of `memory_mb`, with the job's
    /// arguments appended (never expanded: they are the client's, passed as given).
    pub fn run_argv(&self, program: &Program<'_>, memory_mb: u64, args: &[String]) -> Vec<String> {
        let mut argv = argv_template::expand_argv(&self.run, &self.context(program, memory_mb));
        argv.extend(args.iter().cloned());
        argv
    }

    /// The language's environment for a step under a memory limit of `memory_mb`.
    pub fn step_env(&self, program: &Program<'_>, memory_mb: u64) -> BTreeMap<String, String> {
        let ctx = self.context(program, memory_mb);
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), argv_template::expand_value(v, &ctx)))
            .collect()
    }

    fn context<'a>(&self, program: &'a Program<'a>, memory_mb: u64) -> StepContext<'a> {
        StepContext {
            entrypoint: program.entrypoint,
            file_names: &program.file_names,
            memory_mb,
            runtime_overhead_mb: self.runtime_overhead_mb,
        }
    }
}

/// How a runtime with its own heap ceiling says it stopped there: it ended with this exit code
/// (or signal) and printed `message` (on stdout or stderr: the JVM uses stdout). The JVM (`-XX:+ExitOnOutOfMemoryError`) and
/// V8 stop at the heap the topology gives them, a few MiB below the kernel's limit, so the
/// kernel never sees the limit reached; this is how the step still ends as a memory limit, not
/// as a crash. A program can print the same words and exit the same way: it can make itself
/// look out of memory (which it could also do by allocating), never look as if it passed.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutOfMemorySign {
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub signal: Option<i32>,
    pub message: String,
}

impl OutOfMemorySign {
    /// Whether `step` ended the way this sign describes.
    pub fn shown_by(&self, step: &StepOutcome) -> bool {
        let ended_so = match step.termination {
            Termination::Exited => self.exit_code.is_some() && step.exit_code == self.exit_code,
            Termination::Signaled => self.signal.is_some() && step.signal == self.signal,
            _ => false,
        };
        let needle = self.message.as_bytes();
        let printed = |out: &[u8]| out.windows(needle.len()).any(|w| w == needle);
        ended_so && (printed(&step.stderr.0) || printed(&step.stdout.0))
    }

    /// Marks every step and judge-mode test of `record` that shows the sign as ended at its
    /// memory limit.
    pub fn apply(&self, record: &mut ShimRecord) {
        for step in record.steps.iter_mut().chain(record.tests.iter_mut()) {
            if self.shown_by(step) {
                step.termination = Termination::MemoryLimit;
            }
        }
    }
}

/// The files of one job as its commands see them: which one is the entrypoint, and all names.
#[derive(Clone, Debug)]
pub struct Program<'a> {
    pub entrypoint: &'a str,
    pub file_names: Vec<&'a str>,
}

impl Topology {
    /// Loads from `RCE_TOPOLOGY`, or [`DEFAULT_PATH`].
    pub fn load_default() -> Result<Self, TopologyError> {
        let path = std::env::var("RCE_TOPOLOGY").unwrap_or_else(|_| DEFAULT_PATH.to_string());
        Self::load(Path::new(&path))
    }

    /// The `topology.yaml` of the source tree this crate was built from: for tests and dev tools
    /// that run from a checkout, never for services (they take `RCE_TOPOLOGY`).
    pub fn from_source_tree() -> Result<Self, TopologyError> {
        Self::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../topology.yaml"
        )))
    }

    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let display = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
            path: display.clone(),
            source,
        })?;
        Self::parse(&text, &display)
    }

    /// Parses and checks the file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, TopologyError> {
        let topology: Topology =
            serde_yaml::from_str(text).map_err(|source| TopologyError::Parse {
                path: origin.to_string(),
                source,
            })?;
        topology.check().map_err(|message| TopologyError::Invalid {
            path: origin.to_string(),
            message,
        })?;
        Ok(topology)
    }

    fn check(&self) -> Result<(), String> {
        if self.schema != 1 {
            return Err(format!(
                "schema {} is not supported (expected 1)",
                self.schema
            ));
        }
        if self.languages.is_empty() {
            return Err("no languages".into());
        }
        if self.sandbox.uid_base < 1000 || self.sandbox.uid_span == 0 {
            return Err("sandbox.uid_base must be >= 1000 and uid_span > 0".into());
        }
        for id in self.languages.keys() {
            let lang = self.language(id).expect("listed");
            let valid_id = id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !valid_id {
                return Err(format!("language id {id:?} must be [a-z0-9_]+"));
            }
            if lang.run.is_empty() {
                return Err(format!("{id}: run is empty"));
            }
            if lang.pool == 0 {
                return Err(format!("{id}: pool must be at least 1"));
            }
            if lang.queue_max_length == 0 || lang.queue_max_length > i32::MAX as u32 {
                return Err(format!(
                    "{id}: queue_max_length (or messaging.max_length) must be between 1 and {}",
                    i32::MAX
                ));
            }
            if lang.file.contains('/') {
                return Err(format!("{id}: file must be a plain name"));
            }
            let argv = lang.compile.iter().flatten().chain(&lang.run);
            for arg in argv {
                argv_template::check(arg, true).map_err(|e| format!("{id}: {e}"))?;
            }
            if let Some(sign) = &lang.out_of_memory {
                if sign.message.is_empty() || (sign.exit_code.is_none() && sign.signal.is_none()) {
                    return Err(format!(
                        "{id}: out_of_memory needs a message and an exit_code or a signal"
                    ));
                }
            }
            for (key, value) in &lang.env {
                argv_template::check(value, false).map_err(|e| format!("{id}: env {key}: {e}"))?;
            }
            let (d, m) = (lang.default_limits, lang.max_limits);
            let over = [
                ("wall_time_ms", d.wall_time_ms, m.wall_time_ms),
                ("cpu_time_ms", d.cpu_time_ms, m.cpu_time_ms),
                ("memory_mb", d.memory_mb, m.memory_mb),
                ("processes", d.processes, m.processes),
                ("output_bytes", d.output_bytes, m.output_bytes),
            ];
            if let Some((field, _, _)) = over.iter().find(|(_, d, m)| d > m) {
                return Err(format!("{id}: default {field} is above its max"));
            }
            if !lang.compat.compiler_options.is_empty() && lang.compile.is_none() {
                return Err(format!(
                    "{id}: compat.compiler_options needs a compile step to pass them to"
                ));
            }
            for option in &lang.compat.compiler_options {
                if !option.starts_with('-') || option.contains(char::is_whitespace) {
                    return Err(format!(
                        "{id}: compiler option {option:?} must be one argument starting with '-'"
                    ));
                }
            }
        }
        // A Judge0 id or a Piston alias names one language only.
        let mut judge0 = std::collections::HashMap::new();
        let mut aliases = std::collections::HashMap::new();
        for (id, spec) in &self.languages {
            for j in &spec.compat.judge0_ids {
                if let Some(other) = judge0.insert(*j, id) {
                    return Err(format!("Judge0 id {j} is claimed by both {other} and {id}"));
                }
            }
            for a in spec.compat.aliases.iter().chain(std::iter::once(id)) {
                if let Some(other) = aliases.insert(a.as_str(), id) {
                    if other != id {
                        return Err(format!("alias {a:?} is claimed by both {other} and {id}"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The language a Judge0 language id names.
    pub fn language_by_judge0_id(&self, judge0_id: u32) -> Option<Language> {
        let (id, _) = self
            .languages
            .iter()
            .find(|(_, spec)| spec.compat.judge0_ids.contains(&judge0_id))?;
        self.language(id)
    }

    /// The language a Piston `language` names: its id or one of its aliases.
    pub fn language_by_alias(&self, name: &str) -> Option<Language> {
        if let Some(lang) = self.language(name) {
            return Some(lang);
        }
        let (id, _) = self
            .languages
            .iter()
            .find(|(_, spec)| spec.compat.aliases.iter().any(|a| a == name))?;
        self.language(id)
    }

    /// The merged view of one language, `None` if the id is unknown.
    pub fn language(&self, id: &str) -> Option<Language> {
        let spec = self.languages.get(id)?;
        Some(Language {
            id: id.to_string(),
            name: spec.name.clone(),
            version: spec.version.clone(),
            image: spec.image.clone(),
            build: spec.build.clone(),
            file: spec.file.clone(),
            compile: spec.compile.clone(),
            run: spec.run.clone(),
            env: spec.env.clone(),
            runtime_overhead_mb: spec.runtime_overhead_mb,
            out_of_memory: spec.out_of_memory.clone(),
            pool: spec.pool,
            default_limits: spec.limits.default.over(self.limits.default),
            max_limits: spec.limits.max.over(self.limits.max),
            compile_limits: spec.limits.compile.over(self.limits.compile),
            runtime: spec
                .runtime
                .clone()
                .unwrap_or_else(|| self.sandbox.runtime.clone()),
            queue_max_length: spec.queue_max_length.unwrap_or(self.messaging.max_length),
            exec_mode: spec.exec_mode.unwrap_or(self.sandbox.exec_mode),
            compat: spec.compat.clone(),
        })
    }

    /// Every language, in id order.
    pub fn all_languages(&self) -> Vec<Language> {
        self.languages
            .keys()
            .filter_map(|id| self.language(id))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_topology() -> Topology {
        Topology::from_source_tree().expect("the repository's topology.yaml loads")
    }

    #[test]
    fn repository_file_declares_the_eight_languages() {
        let t = repo_topology();
        let ids: Vec<_> = t.languages.keys().map(String::as_str).collect();
        assert_eq!(
            ids,
            [
                "bash",
                "c",
                "cpp",
                "go",
                "java",
                "javascript",
                "python",
                "rust"
            ]
        );
        assert_eq!(t.messaging.job_queue("python"), "rce.jobs.python");
    }

    #[test]
    fn language_overrides_merge_over_global_limits() {
        let t = repo_topology();
        let java = t.language("java").unwrap();
        assert_eq!(java.default_limits.memory_mb, 512);
        assert_eq!(
            java.default_limits.output_bytes,
            t.limits.default.output_bytes
        );
        assert_eq!(java.max_limits.processes, 512);
        let py = t.language("python").unwrap();
        assert_eq!(py.default_limits, t.limits.default);
    }

    #[test]
    fn argv_placeholders_expand() {
        let t = repo_topology();
        let java = t.language("java").unwrap();
        let main = Program {
            entrypoint: "Main.java",
            file_names: vec!["Main.java", "Helper.java"],
        };
        let run = java.run_argv(&main, 512, &["a b".into()]);
        assert_eq!(run.last().unwrap(), "a b");
        assert!(run.contains(&"Main".to_string()), "{run:?}");
        let javac = java.compile_argv(&main).unwrap();
        assert!(
            javac.ends_with(&["Main.java".into(), "Helper.java".into()]),
            "{javac:?}"
        );
        let c = t.language("c").unwrap();
        let prog = Program {
            entrypoint: "prog.c",
            file_names: vec!["prog.c"],
        };
        assert!(c
            .compile_argv(&prog)
            .unwrap()
            .contains(&"prog.c".to_string()));
        let py = Program {
            entrypoint: "main.py",
            file_names: vec!["main.py"],
        };
        assert!(t.language("python").unwrap().compile_argv(&py).is_none());
    }

    #[test]
    fn the_heap_of_every_runtime_with_one_follows_the_limit() {
        let t = repo_topology();
        let program = |file| Program {
            entrypoint: file,
            file_names: vec![file],
        };
        for (id, file) in [
            ("java", "Main.java"),
            ("javascript", "main.js"),
            ("go", "main.go"),
        ] {
            let lang = t.language(id).unwrap();
            let p = program(file);
            let heap = |mb| {
                let mut words = lang.run_argv(&p, mb, &[]);
                words.extend(lang.step_env(&p, mb).into_values());
                words.join(" ")
            };
            let (small, large) = (heap(256), heap(1024));
            assert_ne!(
                small, large,
                "{id}: the heap does not follow memory_mb: {small}"
            );
            let at = |mb: u64| (mb - lang.runtime_overhead_mb).to_string();
            assert!(large.contains(&at(1024)), "{id}: {large}");
        }
    }

    fn step(
        termination: Termination,
        exit_code: Option<i32>,
        signal: Option<i32>,
        stderr: &str,
    ) -> StepOutcome {
        StepOutcome {
            name: crate::step::StepName::Run,
            termination,
            exit_code,
            signal,
            wall_ms: 1,
            cpu_ms: 1,
            memory_kb: 1,
            stdout: crate::bytes::Base64Bytes(Vec::new()),
            stderr: crate::bytes::Base64Bytes(stderr.as_bytes().to_vec()),
            truncated: false,
        }
    }

    #[test]
    fn a_runtime_that_stops_at_its_own_heap_is_recognised_by_exit_and_words_together() {
        let t = repo_topology();
        let java = t.language("java").unwrap().out_of_memory.unwrap();
        let words = "x\nTerminating due to java.lang.OutOfMemoryError: Java heap space\n";
        assert!(java.shown_by(&step(Termination::Exited, Some(3), None, words)));
        assert!(!java.shown_by(&step(Termination::Exited, Some(3), None, "exit(3)")));
        assert!(!java.shown_by(&step(Termination::Exited, Some(1), None, words)));
        assert!(!java.shown_by(&step(Termination::WallTimeout, None, None, words)));
        let node = t.language("javascript").unwrap().out_of_memory.unwrap();
        let v8 =
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory";
        assert!(node.shown_by(&step(Termination::Signaled, None, Some(6), v8)));
        assert!(!node.shown_by(&step(Termination::Signaled, None, Some(11), v8)));
        // Judge mode's tests too, not only the record's steps.
        let mut record = ShimRecord {
            steps: vec![step(Termination::Exited, Some(0), None, "")],
            tests: vec![
                step(Termination::Exited, Some(0), None, ""),
                step(Termination::Exited, Some(3), None, words),
            ],
            ..ShimRecord::default()
        };
        java.apply(&mut record);
        assert_eq!(record.steps[0].termination, Termination::Exited);
        assert_eq!(record.tests[0].termination, Termination::Exited);
        assert_eq!(record.tests[1].termination, Termination::MemoryLimit);
    }

    #[test]
    fn a_misspelled_placeholder_fails_at_load() {
        let text = with_bash("    env: {X: \"{heap}\"}\n");
        let e = Topology::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("unknown placeholder {heap}"), "{e}");
    }

    /// The repository's topology.yaml with `extra` added to the bash language.
    fn with_bash(extra: &str) -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../topology.yaml"))
            .unwrap()
            .replace(
                "    image: rce-bash\n",
                &format!("    image: rce-bash\n{extra}"),
            )
    }

    #[test]
    fn queue_max_length_is_per_language_or_the_messaging_default() {
        let t = Topology::parse(&with_bash("    queue_max_length: 7\n"), "test").unwrap();
        assert_eq!(t.language("bash").unwrap().queue_max_length, 7);
        assert_eq!(
            t.language("python").unwrap().queue_max_length,
            t.messaging.max_length
        );
        assert!(Topology::parse(&with_bash("    queue_max_length: 0\n"), "test").is_err());
    }

    #[test]
    fn exec_mode_is_per_language_or_the_sandbox_default() {
        let t = Topology::parse(&with_bash("    exec_mode: exec\n"), "t.yaml").unwrap();
        assert_eq!(t.language("bash").unwrap().exec_mode, ExecMode::Exec);
        assert_eq!(t.language("python").unwrap().exec_mode, t.sandbox.exec_mode);
        assert!(Topology::parse(&with_bash("    exec_mode: fork\n"), "t.yaml").is_err());
    }

    #[test]
    fn runtime_is_per_language_or_the_sandbox_default() {
        let t = Topology::parse(&with_bash("    runtime: runsc\n"), "t.yaml").unwrap();
        assert_eq!(t.language("bash").unwrap().runtime, "runsc");
        assert_eq!(t.language("python").unwrap().runtime, t.sandbox.runtime);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../topology.yaml"))
                .unwrap()
                .replace("schema: 1", "schema: 1\nsurprise: true");
        let err = Topology::parse(&text, "t.yaml").unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");
    }

    #[test]
    fn default_above_max_is_rejected() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../topology.yaml"))
                .unwrap()
                .replace("max: {processes: 512}", "max: {processes: 2}");
        let err = Topology::parse(&text, "t.yaml").unwrap_err();
        assert!(err.to_string().contains("java"), "{err}");
    }
}
