//! `warden up`.

#[derive(Debug, clap::Args)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`warden up` is not built yet")
}
