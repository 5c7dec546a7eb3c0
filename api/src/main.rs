use anyhow::Context;
use rce_api::{app, config::ApiConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rce_service::telemetry::init();
    let config = ApiConfig::from_env().context("reading configuration")?;
    let result = app::run(config, rce_service::shutdown::signal()).await;
    if let Err(e) = &result {
        tracing::error!(error = format!("{e:#}"), "api stopped");
    }
    result
}
