use anyhow::Context;
use rce_bench::{options::Options, session};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = Options::from_env_and_args(std::env::args().skip(1)).context("options")?;
    if options.help {
        print!("{}", rce_bench::options::USAGE);
        return Ok(());
    }
    session::run(options).await
}
