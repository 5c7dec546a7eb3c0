//! The naive baseline through the CLI: `docker run --rm` per job, with the flags of
//! `bench/core-path.sh` and the limits the pool gives the language's warm containers.

use crate::cell::JobFn;
use crate::child_process::run_expecting;
use crate::naive_engine::NAIVE_LABEL;
use bollard::models::ContainerCreateBody;
use std::sync::Arc;

/// The `docker run` argv for `command` in a fresh container shaped like `body` (the naive
/// engine-API body): same image, memory, pids, CPU and tmpfs mounts; `--network none`, a
/// read-only root, `--init`, all capabilities dropped and no-new-privileges, as core-path.sh.
pub fn docker_run_argv(body: &ContainerCreateBody, command: &[String]) -> Vec<String> {
    let host = body.host_config.clone().unwrap_or_default();
    let mut argv: Vec<String> = [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--read-only",
        "--init",
    ]
    .map(String::from)
    .to_vec();
    let mut tmpfs: Vec<(String, String)> = host.tmpfs.unwrap_or_default().into_iter().collect();
    tmpfs.sort();
    for (mount, opts) in tmpfs {
        argv.extend(["--tmpfs".into(), format!("{mount}:{opts}")]);
    }
    if let Some(memory) = host.memory {
        let mib = format!("{}m", memory >> 20);
        argv.extend(["--memory".into(), mib.clone(), "--memory-swap".into(), mib]);
    }
    if let Some(pids) = host.pids_limit {
        argv.extend(["--pids-limit".into(), pids.to_string()]);
    }
    if let Some(nano) = host.nano_cpus {
        argv.extend(["--cpus".into(), format!("{}", nano as f64 / 1e9)]);
    }
    argv.extend(
        [
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "-w",
            "/tmp",
            "--label",
        ]
        .map(String::from),
    );
    argv.push(format!("{}={}", NAIVE_LABEL.0, NAIVE_LABEL.1));
    argv.push(body.image.clone().unwrap_or_default());
    argv.extend(command.iter().cloned());
    argv
}

pub fn job(argv: Vec<String>, expected: &'static str) -> JobFn {
    let argv = Arc::new(argv);
    Arc::new(move || {
        let argv = argv.clone();
        Box::pin(async move {
            run_expecting(&argv, expected).await?;
            Ok(None)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::naive_engine::naive_body;
    use rce_protocol::topology::Topology;

    #[test]
    fn flags_follow_core_path_and_the_pool_limits() {
        let t = Topology::from_source_tree().unwrap();
        let python = t.language("python").unwrap();
        let command = vec!["python3".to_string(), "-c".into(), "print(1)".into()];
        let argv = docker_run_argv(&naive_body(&python, &t.sandbox, &command), &command);
        let line = argv.join(" ");
        for flag in [
            "docker run --rm --network none --read-only --init",
            "--memory 256m --memory-swap 256m",
            "--pids-limit 272",
            "--cpus 1 ",
            "--cap-drop ALL --security-opt no-new-privileges",
            "--tmpfs /work:rw,exec,nosuid,nodev,size=128m",
            "rce-python:latest python3 -c print(1)",
        ] {
            assert!(line.contains(flag), "{flag:?} missing from {line}");
        }
        let c = t.language("c").unwrap();
        let argv = docker_run_argv(&naive_body(&c, &t.sandbox, &command), &command);
        assert!(
            argv.join(" ").contains("--memory 1024m"),
            "the compiler's memory"
        );
    }
}
