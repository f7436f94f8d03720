//! `watchdog`: the command line and server of WatchDog.

use clap::Parser;
use watchdog::{cli, commands};

/// mimalloc instead of glibc's malloc. Under the server's load (tokio worker threads each
/// allocating and freeing request bodies, parsed batches and series histories of many
/// sizes) glibc keeps freed memory in per-thread arenas it rarely returns, so the resident
/// size creeps for as long as the mix of sizes shifts (measured in `scripts/soak.sh`);
/// mimalloc's per-page free lists give pages back once they empty.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
