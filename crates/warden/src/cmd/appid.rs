//! `warden appid ...`.

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {}

pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    match command {}
}
