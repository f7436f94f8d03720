//! One module per subcommand.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub mod replay;

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => replay::run(&args),
    }
}
