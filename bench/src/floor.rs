//! The floor: the program run natively on the host, with no sandbox at all. No remote
//! execution service can do better than this; the ratios in the report are against it.

use crate::cell::JobFn;
use crate::child_process::run_expecting;
use crate::workload::{Workload, FLOOR_C_BINARY};
use anyhow::{bail, Context};
use std::path::Path;
use std::sync::Arc;

/// Compiles what needs compiling (once, with the host's `gcc -O2`, into `out_dir`) and returns
/// the job that runs the program natively.
pub async fn prepare(workload: &Workload, out_dir: &Path) -> anyhow::Result<JobFn> {
    let binary = out_dir.join(FLOOR_C_BINARY);
    if workload.compiled {
        let source = out_dir.join("hello.c");
        std::fs::write(&source, workload.source)
            .with_context(|| format!("writing {}", source.display()))?;
        let status = tokio::process::Command::new("gcc")
            .arg("-O2")
            .arg("-o")
            .arg(&binary)
            .arg(&source)
            .status()
            .await
            .context("running the host's gcc (the C floor needs it)")?;
        if !status.success() {
            bail!("gcc -O2 {} failed: {status}", source.display());
        }
    }
    let argv = Arc::new(workload.native_argv(&binary.to_string_lossy()));
    let expected = workload.expected_stdout;
    Ok(Arc::new(move || {
        let argv = argv.clone();
        Box::pin(async move {
            run_expecting(&argv, expected).await?;
            Ok(None)
        })
    }))
}
