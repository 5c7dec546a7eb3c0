//! Running a program as a child process and checking what it printed: the floor (the program
//! itself) and `docker run` (the program in a new container) are both just that.

use anyhow::{bail, Context};
use std::process::Stdio;

/// Spawns `argv` with no stdin, waits, and fails unless it exited 0 printing exactly `expected`.
pub async fn run_expecting(argv: &[String], expected: &str) -> anyhow::Result<()> {
    let (program, args) = argv.split_first().context("empty argv")?;
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("spawning {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} exited {}: {}",
            out.status,
            snippet(&String::from_utf8_lossy(&out.stderr))
        );
    }
    if out.stdout != expected.as_bytes() {
        bail!(
            "{program} printed {:?}, expected {expected:?}",
            snippet(&String::from_utf8_lossy(&out.stdout))
        );
    }
    Ok(())
}

/// The start of a long text, for an error message.
pub fn snippet(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[tokio::test]
    async fn checks_exit_status_and_output() {
        run_expecting(&argv(&["sh", "-c", "echo hi"]), "hi\n")
            .await
            .unwrap();
        assert!(run_expecting(&argv(&["sh", "-c", "echo ho"]), "hi\n")
            .await
            .is_err());
        assert!(
            run_expecting(&argv(&["sh", "-c", "echo hi; exit 3"]), "hi\n")
                .await
                .is_err()
        );
    }
}
