use anyhow::Context;
use rce_bench::{options::Options, session};

/// One thread: the client shares the machine with what it measures.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let options = Options::from_env_and_args(std::env::args().skip(1)).context("options")?;
    if options.help {
        print!("{}", rce_bench::options::USAGE);
        return Ok(());
    }
    session::run(options).await
}
