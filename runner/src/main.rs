use anyhow::Context;
use rce_runner::{app, config::RunnerConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rce_service::telemetry::init();
    let config = RunnerConfig::from_env().context("reading configuration")?;
    let result = app::run(config, rce_service::shutdown::signal()).await;
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), "runner stopped");
    }
    result
}
