//! Exec mode: one `docker exec` of the shim per job; the job line, then control lines, in on its
//! stdin, live events and last the record out on its stdout.

use crate::conversation::{converse, Ending, Handoff, JobChannels, LineSplitter};
use crate::error::{PoolError, StreamError};
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use rce_protocol::shim::{ShimJob, ShimRecord, SHIM_PATH};
use tokio::sync::oneshot;

/// Runs `job` through a freshly exec'd shim in container `id`; its outcome also goes to `early`.
pub async fn run_job(
    docker: &Docker,
    id: &str,
    job: &ShimJob,
    payload: Vec<u8>,
    channels: JobChannels,
    early: Option<oneshot::Sender<ShimRecord>>,
) -> Result<ShimRecord, PoolError> {
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
        return Err(StreamError::Detached.into());
    };
    let mut lines = LineSplitter::default();
    let handoff = Handoff {
        job_id: &job.job_id,
        line: payload,
        ending: Ending::StreamEnd,
        early,
    };
    converse(&mut input, &mut output, &mut lines, handoff, channels).await
}
