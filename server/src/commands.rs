//! One module per subcommand.

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub mod benchmark;
pub mod compat;
pub mod demo;
pub mod human;
pub mod loadgen;
pub mod notify;
pub mod replay;
pub mod run;
pub mod serve;
pub mod signatures;
pub mod simulate;
pub mod simulate_serve;

/// Runs the chosen subcommand.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Replay(args) => replay::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Notify(args) => notify::run(&args),
        Command::Loadgen(args) => loadgen::run(&args),
        Command::Signatures(args) => signatures::run(&args),
        Command::Benchmark(args) => benchmark::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Demo(args) => demo::run(&args),
    }
}
