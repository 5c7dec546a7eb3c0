//! What exactly a step's process is started with: the program paths to try (execvp semantics
//! against a fixed PATH, since the shim never runs a shell), the argv, an environment built from
//! an allowlist (nothing of the shim's own environment leaks into the job), and its rlimits.
//! Pure data preparation, done before fork so the child allocates nothing.

use crate::sys::{ChildSpec, Resource};
use rce_protocol::shim::{ShimStep, StepLimits};
use std::collections::BTreeMap;
use std::ffi::CString;

/// The only PATH a job sees, and the one the shim resolves commands against.
pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// RLIMIT_STACK of every step (soft and hard).
pub const STACK_BYTES: u64 = 64 << 20;
/// The umask of every step: files the job creates are private to its uid.
pub const UMASK: u32 = 0o077;

/// The files execve is tried on, in order: the name itself when it contains a `/` (relative to
/// the workspace, the child's cwd), else each PATH directory joined with it.
pub fn candidates(program: &str) -> Vec<String> {
    if program.is_empty() {
        Vec::new()
    } else if program.contains('/') {
        vec![program.to_string()]
    } else {
        PATH.split(':')
            .map(|dir| format!("{dir}/{program}"))
            .collect()
    }
}

/// The step's environment: the fixed allowlist with `extra` on top, as `KEY=value` strings.
pub fn environment(
    workspace: &str,
    extra: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let mut env: BTreeMap<String, String> = [
        ("PATH", PATH.to_string()),
        ("HOME", workspace.to_string()),
        ("TMPDIR", format!("{workspace}/.tmp")),
        ("XDG_CACHE_HOME", format!("{workspace}/.cache")),
        ("LANG", "C.UTF-8".to_string()),
        ("LC_ALL", "C.UTF-8".to_string()),
        ("PYTHONNOUSERSITE", "1".to_string()),
        ("PYTHONDONTWRITEBYTECODE", "1".to_string()),
        ("PYTHONSAFEPATH", "1".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            return Err(format!("invalid environment variable name {k:?}"));
        }
        if v.contains('\0') {
            return Err(format!("environment variable {k} contains a NUL byte"));
        }
        env.insert(k.clone(), v.clone());
    }
    Ok(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect())
}

/// The rlimits of a step as (resource, soft, hard), before clamping to what the shim may grant.
pub fn rlimits(limits: &StepLimits) -> Vec<(Resource, u64, u64)> {
    let cpu = limits.cpu_time_ms.div_ceil(1000).saturating_add(1);
    vec![
        (Resource::Cpu, cpu, cpu.saturating_add(1)),
        (
            Resource::FileSize,
            limits.file_size_bytes,
            limits.file_size_bytes,
        ),
        (Resource::OpenFiles, limits.open_files, limits.open_files),
        (Resource::Core, 0, 0),
        (Resource::Processes, limits.processes, limits.processes),
        (Resource::Stack, STACK_BYTES, STACK_BYTES),
    ]
}

/// Lowers each limit to `hard_of(resource)`: an unprivileged process cannot raise its hard
/// limit, and a lower ceiling set on the container must win anyway.
pub fn clamp(
    limits: Vec<(Resource, u64, u64)>,
    hard_of: impl Fn(Resource) -> u64,
) -> Vec<(Resource, u64, u64)> {
    limits
        .into_iter()
        .map(|(r, soft, hard)| {
            let ceiling = hard_of(r);
            (r, soft.min(ceiling), hard.min(ceiling))
        })
        .collect()
}

fn cstring(what: &str, s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{what} contains a NUL byte: {s:?}"))
}

/// Everything the exec child needs for `step`, or why the step is malformed.
pub fn child_spec(workspace: &str, uid: u32, step: &ShimStep) -> Result<ChildSpec, String> {
    let program = step.argv.first().ok_or("step has an empty argv")?;
    let argv = step
        .argv
        .iter()
        .map(|a| cstring("argument", a))
        .collect::<Result<Vec<_>, _>>()?;
    let candidates = candidates(program)
        .iter()
        .map(|c| cstring("program", c))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = environment(workspace, &step.env)?
        .iter()
        .map(|e| cstring("environment", e))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ChildSpec {
        candidates,
        argv,
        envp,
        workdir: cstring("workspace", workspace)?,
        uid,
        limits: clamp(rlimits(&step.limits), crate::sys::hard_limit),
        umask: UMASK,
        cgroup_procs: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_protocol::step::StepName;

    fn limits() -> StepLimits {
        StepLimits {
            wall_time_ms: 5000,
            cpu_time_ms: 3000,
            memory_kb: 262144,
            processes: 64,
            output_bytes: 65536,
            file_size_bytes: 1 << 20,
            open_files: 256,
        }
    }

    #[test]
    fn bare_names_are_looked_up_in_path() {
        assert_eq!(
            candidates("python3"),
            ["/usr/local/bin/python3", "/usr/bin/python3", "/bin/python3"]
        );
    }

    #[test]
    fn names_with_a_slash_are_used_as_is() {
        assert_eq!(candidates("./main"), ["./main"]);
        assert_eq!(candidates("/usr/bin/env"), ["/usr/bin/env"]);
        assert!(candidates("").is_empty());
    }

    #[test]
    fn environment_is_an_allowlist_with_overrides() {
        let extra = BTreeMap::from([
            ("JAVA_TOOL_OPTIONS".to_string(), "-Xmx256m".to_string()),
            ("LANG".to_string(), "en_US.UTF-8".to_string()),
        ]);
        let env = environment("/work/j-1", &extra).unwrap();
        assert!(env.contains(&"HOME=/work/j-1".to_string()));
        assert!(env.contains(&"TMPDIR=/work/j-1/.tmp".to_string()));
        assert!(env.contains(&"XDG_CACHE_HOME=/work/j-1/.cache".to_string()));
        assert!(env.contains(&"PATH=/usr/local/bin:/usr/bin:/bin".to_string()));
        assert!(env.contains(&"PYTHONSAFEPATH=1".to_string()));
        assert!(env.contains(&"JAVA_TOOL_OPTIONS=-Xmx256m".to_string()));
        assert!(env.contains(&"LANG=en_US.UTF-8".to_string()));
        assert_eq!(env.iter().filter(|e| e.starts_with("LANG=")).count(), 1);
        assert_eq!(env.len(), 10);
    }

    #[test]
    fn bad_environment_names_are_rejected() {
        for k in ["", "A=B", "A\0"] {
            let extra = BTreeMap::from([(k.to_string(), "v".to_string())]);
            assert!(environment("/w", &extra).is_err(), "{k:?}");
        }
        let extra = BTreeMap::from([("A".to_string(), "v\0".to_string())]);
        assert!(environment("/w", &extra).is_err());
    }

    #[test]
    fn cpu_limit_rounds_up_and_leaves_a_second() {
        let mut l = limits();
        let r = rlimits(&l);
        assert_eq!(r[0], (Resource::Cpu, 4, 5));
        l.cpu_time_ms = 3001;
        assert_eq!(rlimits(&l)[0], (Resource::Cpu, 5, 6));
        l.cpu_time_ms = 0;
        assert_eq!(rlimits(&l)[0], (Resource::Cpu, 1, 2));
    }

    #[test]
    fn other_limits() {
        let r = rlimits(&limits());
        assert!(r.contains(&(Resource::FileSize, 1 << 20, 1 << 20)));
        assert!(r.contains(&(Resource::OpenFiles, 256, 256)));
        assert!(r.contains(&(Resource::Core, 0, 0)));
        assert!(r.contains(&(Resource::Processes, 64, 64)));
        assert!(r.contains(&(Resource::Stack, 64 << 20, 64 << 20)));
    }

    #[test]
    fn clamping_never_raises() {
        let r = clamp(rlimits(&limits()), |res| match res {
            Resource::OpenFiles => 100,
            Resource::Stack => 8 << 20,
            _ => u64::MAX,
        });
        assert!(r.contains(&(Resource::OpenFiles, 100, 100)));
        assert!(r.contains(&(Resource::Stack, 8 << 20, 8 << 20)));
        assert!(r.contains(&(Resource::Processes, 64, 64)));
    }

    #[test]
    fn child_spec_rejects_nul_and_empty_argv() {
        let mut step = ShimStep {
            name: StepName::Run,
            argv: vec![],
            env: BTreeMap::new(),
            stdin: Default::default(),
            limits: limits(),
            merge_stderr: false,
        };
        assert!(child_spec("/w", 20000, &step).is_err());
        step.argv = vec!["python3".into(), "a\0b".into()];
        assert!(child_spec("/w", 20000, &step).is_err());
        step.argv = vec!["python3".into(), "main.py".into()];
        let spec = child_spec("/w", 20000, &step).unwrap();
        assert_eq!(spec.candidates.len(), 3);
        assert_eq!(spec.argv.len(), 2);
    }
}
