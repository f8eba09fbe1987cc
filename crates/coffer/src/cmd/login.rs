//! Not written yet.

/// Arguments.
#[derive(clap::Args)]
pub struct Args {}

/// Runs the command, returning the exit code.
pub fn run(_args: Args) -> anyhow::Result<i32> {
    anyhow::bail!("not implemented yet")
}
