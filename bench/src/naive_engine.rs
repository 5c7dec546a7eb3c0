//! The naive baseline through the engine API: a new container per job (create, start, wait,
//! read its log, remove), with the same image, hardening and limits as the pool's warm
//! containers. It is what a service without a warm pool would pay per job.

use crate::cell::JobFn;
use crate::child_process::snippet;
use anyhow::{bail, Context};
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfigLogConfig};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, LogsOptions, RemoveContainerOptionsBuilder,
    StartContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures_util::StreamExt;
use rce_protocol::topology::{ExecMode, Language, Sandbox};
use std::collections::HashMap;
use std::sync::Arc;

/// Runner id in the naive containers' labels: no runner of the fleet ever owns them.
pub const NAIVE_RUNNER_ID: &str = "bench-naive";
/// The label every naive container (engine API and CLI) carries, so strays are found.
pub const NAIVE_LABEL: (&str, &str) = ("rce.bench", "naive");

/// The create request: the pool's body for the language, with the program as the command.
///
/// The pool's container runs the shim (idle or agent) as its main process and, in agent mode,
/// keeps stdin open for the runner and logs nothing; a naive container runs the program itself,
/// with no stdin and the output kept in its log (json-file) to be read after it exits. Its
/// user is the image's, root: the shim, which drops each job to its own uid, is not involved.
pub fn naive_body(
    language: &Language,
    sandbox: &Sandbox,
    command: &[String],
) -> ContainerCreateBody {
    let mut language = language.clone();
    language.exec_mode = ExecMode::Exec;
    let mut body = rce_pool::container_spec::container_body(&language, sandbox, NAIVE_RUNNER_ID);
    body.cmd = Some(command.to_vec());
    body.working_dir = Some("/tmp".into());
    body.open_stdin = Some(false);
    body.stdin_once = Some(false);
    body.attach_stdin = Some(false);
    body.attach_stdout = Some(false);
    body.attach_stderr = Some(false);
    body.tty = Some(false);
    body.labels
        .get_or_insert_with(HashMap::new)
        .insert(NAIVE_LABEL.0.into(), NAIVE_LABEL.1.into());
    if let Some(host) = body.host_config.as_mut() {
        // No shim and no step cgroups here: the container's cgroup is the job's limit, sized
        // as a container-per-job service would (the default limit, or the compiler's).
        let mut mib = language.default_limits.memory_mb;
        if language.is_compiled() {
            mib = mib.max(language.compile_limits.memory_mb);
        }
        host.memory = Some((mib as i64) << 20);
        host.memory_swap = host.memory;
        host.log_config = Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: None,
        });
    }
    body
}

/// The job: one container from `body`, which must print `expected`.
pub fn job(docker: Docker, body: ContainerCreateBody, expected: &'static str) -> JobFn {
    let (docker, body) = (Arc::new(docker), Arc::new(body));
    Arc::new(move || {
        let (docker, body) = (docker.clone(), body.clone());
        Box::pin(async move {
            let id = docker
                .create_container(None, (*body).clone())
                .await
                .context("create")?
                .id;
            let outcome = start_wait_read(&docker, &id).await;
            let removed = remove(&docker, &id).await;
            let (exit, stdout, stderr) = outcome?;
            removed?;
            if exit != 0 {
                bail!("container exited {exit}: {}", snippet(&stderr));
            }
            if stdout != expected {
                bail!(
                    "container printed {:?}, expected {expected:?}",
                    snippet(&stdout)
                );
            }
            Ok(None)
        })
    })
}

/// Starts the container, waits for it to exit and reads its log: (exit code, stdout, stderr).
async fn start_wait_read(docker: &Docker, id: &str) -> anyhow::Result<(i64, String, String)> {
    docker
        .start_container(id, None::<StartContainerOptions>)
        .await
        .context("start")?;
    let exit = match docker
        .wait_container(id, None::<WaitContainerOptions>)
        .next()
        .await
    {
        Some(Ok(r)) => r.status_code,
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
        Some(Err(e)) => return Err(e).context("wait"),
        None => bail!("wait: the engine closed the stream"),
    };
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut logs = docker.logs(id, Some(options));
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(frame) = logs.next().await {
        match frame.context("logs")? {
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                stdout.extend_from_slice(&message)
            }
            LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
            LogOutput::StdIn { .. } => {}
        }
    }
    Ok((
        exit,
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    ))
}

async fn remove(docker: &Docker, id: &str) -> anyhow::Result<()> {
    let options = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    docker
        .remove_container(id, Some(options))
        .await
        .context("remove")
}

/// Removes containers a crashed earlier run left: the bench runner's (`rce.runner=<runner_id>`)
/// and naive ones. Returns how many.
pub async fn remove_strays(docker: &Docker, runner_id: &str) -> anyhow::Result<usize> {
    let mut removed = 0;
    for label in [
        format!("rce.runner={runner_id}"),
        format!("{}={}", NAIVE_LABEL.0, NAIVE_LABEL.1),
    ] {
        let filters = HashMap::from([("label", vec![label])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        for container in docker.list_containers(Some(options)).await? {
            if let Some(id) = container.id {
                remove(docker, &id).await.ok();
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rce_protocol::topology::Topology;

    #[test]
    fn same_hardening_as_the_pool_but_the_program_and_no_stdin() {
        let t = Topology::from_source_tree().unwrap();
        let python = t.language("python").unwrap();
        let command = vec!["python3".to_string(), "-c".into(), "print(1)".into()];
        let body = naive_body(&python, &t.sandbox, &command);
        let pool = rce_pool::container_spec::container_body(&python, &t.sandbox, "r");
        assert_eq!(body.cmd.as_deref(), Some(&command[..]));
        assert_eq!(body.image, pool.image);
        assert_eq!(body.network_disabled, Some(true));
        assert_eq!(body.open_stdin, Some(false));
        assert_eq!(body.attach_stdin, Some(false));
        let (h, p) = (body.host_config.unwrap(), pool.host_config.unwrap());
        assert_eq!(h.readonly_rootfs, p.readonly_rootfs);
        // The pool's container limit is only a backstop above its step cgroups; a naive
        // container's limit is the job's.
        assert_eq!(
            h.memory,
            Some((python.default_limits.memory_mb as i64) << 20)
        );
        assert_eq!(h.memory_swap, h.memory);
        assert_eq!(h.pids_limit, p.pids_limit);
        assert_eq!(h.cap_drop, p.cap_drop);
        assert_eq!(h.security_opt, p.security_opt);
        assert_eq!(h.tmpfs, p.tmpfs);
        assert_eq!(h.init, Some(true));
        assert_eq!(h.log_config.unwrap().typ.as_deref(), Some("json-file"));
        assert_eq!(body.labels.unwrap()[NAIVE_LABEL.0], NAIVE_LABEL.1);
    }
}
