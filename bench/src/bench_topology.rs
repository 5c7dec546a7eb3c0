//! The topology the bench's runner serves: the repository's `topology.yaml`, with each measured
//! language's pool enlarged and an exec-mode twin (`python_exec`, `c_exec`) beside it, so both
//! modes run side by side in one runner and one api.

use anyhow::{bail, Context};
use serde_yaml::{Mapping, Value};

/// Suffix of the exec-mode twin of a language.
pub const EXEC_SUFFIX: &str = "_exec";

/// The language id of `language`'s exec-mode twin.
pub fn exec_twin(language: &str) -> String {
    format!("{language}{EXEC_SUFFIX}")
}

/// The topology text: every measured language gets `pool` warm containers, and a copy named
/// `<id>_exec` with `exec_mode: exec`. The original keeps its own mode (the sandbox default,
/// agent, in the repository's file).
pub fn bench_topology(source: &str, measured: &[String], pool: usize) -> anyhow::Result<String> {
    let mut root: Value = serde_yaml::from_str(source).context("topology.yaml is not YAML")?;
    let languages = root
        .get_mut("languages")
        .and_then(Value::as_mapping_mut)
        .context("topology.yaml has no languages mapping")?;
    let mut twins = Mapping::new();
    for id in measured {
        let Some(spec) = languages
            .get_mut(id.as_str())
            .and_then(Value::as_mapping_mut)
        else {
            bail!("topology.yaml has no language {id:?}");
        };
        spec.insert("pool".into(), (pool as u64).into());
        let mut twin = spec.clone();
        // Judge0 ids and Piston aliases name the original only.
        twin.remove("compat");
        twin.insert("exec_mode".into(), "exec".into());
        twin.insert(
            "name".into(),
            format!(
                "{} (exec mode)",
                spec.get("name").and_then(Value::as_str).unwrap_or(id)
            )
            .into(),
        );
        twins.insert(exec_twin(id).into(), Value::Mapping(twin));
    }
    for (id, twin) in twins {
        languages.insert(id, twin);
    }
    serde_yaml::to_string(&root).context("writing the bench topology")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_protocol::topology::{ExecMode, Topology};

    fn repo_yaml() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../topology.yaml")).unwrap()
    }

    #[test]
    fn twins_in_exec_mode_and_bigger_pools() {
        let measured = vec!["python".to_string(), "c".to_string()];
        let text = bench_topology(&repo_yaml(), &measured, 4).unwrap();
        let t = Topology::parse(&text, "bench.yaml").expect("a valid topology");
        let repo = Topology::from_source_tree().unwrap();
        for id in ["python", "c"] {
            let (lang, twin) = (t.language(id).unwrap(), t.language(&exec_twin(id)).unwrap());
            assert_eq!(lang.pool, 4);
            assert_eq!(twin.pool, 4);
            assert_eq!(lang.exec_mode, repo.language(id).unwrap().exec_mode);
            assert_eq!(twin.exec_mode, ExecMode::Exec);
            assert_eq!(twin.image, lang.image);
            assert_eq!(twin.run, lang.run);
            assert_eq!(twin.compile, lang.compile);
        }
        assert_eq!(
            t.language("java").unwrap().pool,
            repo.language("java").unwrap().pool,
            "unmeasured languages stay as they are"
        );
    }

    #[test]
    fn an_unknown_language_is_an_error() {
        assert!(bench_topology(&repo_yaml(), &["cobol".to_string()], 4).is_err());
    }
}
