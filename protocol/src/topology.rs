//! `topology.yaml`: the exchanges, queues and languages the fleet runs, loaded once and shared.

use crate::limits::{Limits, PartialLimits};
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
    /// The compile argv for `entrypoint`, if the language compiles.
    pub fn compile_argv(&self, entrypoint: &str) -> Option<Vec<String>> {
        self.compile.as_ref().map(|c| expand(c, entrypoint))
    }
    /// The run argv for `entrypoint`, with the job's arguments appended.
    pub fn run_argv(&self, entrypoint: &str, args: &[String]) -> Vec<String> {
        let mut argv = expand(&self.run, entrypoint);
        argv.extend(args.iter().cloned());
        argv
    }
}

fn expand(template: &[String], entrypoint: &str) -> Vec<String> {
    let stem = entrypoint
        .rsplit_once('.')
        .map_or(entrypoint, |(stem, _)| stem);
    template
        .iter()
        .map(|arg| arg.replace("{file}", entrypoint).replace("{stem}", stem))
        .collect()
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
        }
        Ok(())
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
        let run = java.run_argv("Main.java", &["a b".into()]);
        assert_eq!(run.last().unwrap(), "a b");
        assert!(run.contains(&"Main".to_string()), "{run:?}");
        let c = t.language("c").unwrap();
        assert!(c
            .compile_argv("prog.c")
            .unwrap()
            .contains(&"prog.c".to_string()));
        assert!(t
            .language("python")
            .unwrap()
            .compile_argv("main.py")
            .is_none());
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
