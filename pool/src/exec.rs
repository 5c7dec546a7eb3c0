//! Running the shim in a container with one `docker exec`: job in on stdin, record out on stdout.

use crate::error::PoolError;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use futures_util::StreamExt;
use rce_protocol::shim::{parse_record, ShimJob, ShimRecord, SHIM_PATH};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The most the runner reads from the shim's stdout: the record of a job at the largest output
/// cap, base64-encoded, with room to spare. Anything beyond is a broken shim.
const MAX_RECORD_BYTES: usize = 64 << 20;

/// Runs `job` through the shim in container `id`; gives up after `deadline`.
pub async fn run_shim(
    docker: &Docker,
    id: &str,
    job: &ShimJob,
    deadline: Duration,
) -> Result<ShimRecord, PoolError> {
    let payload = serde_json::to_vec(job)?;
    let exec = docker
        .create_exec(
            id,
            CreateExecOptions {
                cmd: Some(vec![SHIM_PATH, "exec"]),
                attach_stdin: Some(true),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(false),
                user: Some("root"),
                ..Default::default()
            },
        )
        .await?;
    let run = async {
        let started = docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: false,
                    output_capacity: Some(64 << 10),
                }),
            )
            .await?;
        let StartExecResults::Attached {
            mut output,
            mut input,
        } = started
        else {
            return Err(PoolError::Stream("exec started detached".into()));
        };
        // The shim reads all of stdin before it starts, so writing before reading cannot
        // deadlock on a full pipe.
        input
            .write_all(&payload)
            .await
            .map_err(|e| PoolError::Stream(format!("writing the job: {e}")))?;
        input
            .shutdown()
            .await
            .map_err(|e| PoolError::Stream(format!("closing the shim's stdin: {e}")))?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(frame) = output.next().await {
            match frame? {
                LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
                LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
                _ => {}
            }
            if stdout.len() > MAX_RECORD_BYTES {
                return Err(PoolError::Stream(
                    "the shim printed more than a record".into(),
                ));
            }
        }
        if !stderr.is_empty() {
            tracing::warn!(shim_stderr = %String::from_utf8_lossy(&stderr[..stderr.len().min(4096)]), "shim wrote to stderr");
        }
        Ok(parse_record(&stdout)?)
    };
    match tokio::time::timeout(deadline, run).await {
        Ok(result) => result,
        Err(_) => Err(PoolError::Timeout(deadline.as_millis() as u64)),
    }
}
