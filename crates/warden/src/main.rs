//! `warden`: the one binary. It parses the command line, sets up logging and the TLS crypto provider,
//! and hands over to the subcommand's module. Everything else lives in the library crates.
#![forbid(unsafe_code)]

mod cmd;
mod common;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the servers allocate and free many small objects per request (JSON values, headers);
/// it is measurably faster than the system allocator for that (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Warden: a oneM2M CSE that vets every connecting application against the App-ID Registry, and the
/// registry itself.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Registry and IN-CSE in one process, on embedded storage, seeded with demo App-IDs.
    Up(cmd::up::Args),
    /// The App-ID Registry service.
    Registry {
        #[command(subcommand)]
        command: cmd::registry::Command,
    },
    /// Manage App-IDs in a registry.
    Appid {
        #[command(subcommand)]
        command: cmd::appid::Command,
    },
    /// The oneM2M CSE.
    Cse {
        #[command(subcommand)]
        command: cmd::cse::Command,
    },
    /// Read admission decisions from a CSE.
    Decisions(cmd::decisions::Args),
    /// A demo PKI: roots of trust and device certificates with App-ID and AE-ID SANs.
    Pki {
        #[command(subcommand)]
        command: cmd::pki::Command,
    },
    /// A simulated device (AE).
    Device {
        #[command(subcommand)]
        command: cmd::device::Command,
    },
    /// The load generator.
    Bench(cmd::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    common::init_tracing();
    common::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => cmd::up::run(args).await,
            Command::Registry { command } => cmd::registry::run(command).await,
            Command::Appid { command } => cmd::appid::run(command).await,
            Command::Cse { command } => cmd::cse::run(command).await,
            Command::Decisions(args) => cmd::decisions::run(args).await,
            Command::Pki { command } => cmd::pki::run(command).await,
            Command::Device { command } => cmd::device::run(command).await,
            Command::Bench(args) => cmd::bench::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<common::UsageError>() {
                Some(_) => ExitCode::from(common::EX_USAGE),
                None => ExitCode::FAILURE,
            }
        }
    }
}
