use anyhow::Context;
use rce_runner::{app, config::RunnerConfig};

fn main() -> anyhow::Result<()> {
    rce_service::telemetry::init();
    let config = RunnerConfig::from_env().context("reading configuration")?;
    let runtime = rce_service::runtime::build().context("building the async runtime")?;
    let result = runtime.block_on(app::run(config, rce_service::shutdown::signal()));
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), "runner stopped");
    }
    result
}
