//! One module per subcommand; each orchestrates the library pieces and prints results on stdout.

pub mod audit;
pub mod backup;
pub mod check;
pub mod download;
pub mod list;
pub mod restore;
pub mod show;

use std::sync::Arc;

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, RepoArgs};
use crate::output::ProgressMode;
use crate::storage::{self, RepoUrl, S3Options, Storage};

/// What every command needs to know about output.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub json: bool,
    pub progress: ProgressMode,
}

pub async fn run(cli: Cli, cancel: CancellationToken) -> Result<()> {
    let ctx = Ctx {
        json: cli.output.json,
        progress: ProgressMode::detect(cli.output.no_progress),
    };
    match cli.command {
        // Commands that change something handle cancellation themselves, to clean up.
        Command::Backup(args) => backup::run(args, ctx, cancel).await,
        Command::List(args) => stop_on_signal(list::run(args, ctx), &cancel).await,
        Command::Show(args) => stop_on_signal(show::run(args, ctx), &cancel).await,
        Command::Restore(args) => restore::run(args, ctx, cancel).await,
        Command::Check(args) => check::run(args, ctx, cancel).await,
        Command::Download(args) => download::run(args, ctx, cancel).await,
        Command::Audit(args) => stop_on_signal(audit::run(args, ctx), &cancel).await,
    }
}

/// For read-only commands: a signal simply stops them (exit 130).
async fn stop_on_signal(
    work: impl std::future::Future<Output = Result<()>>,
    cancel: &CancellationToken,
) -> Result<()> {
    tokio::select! {
        r = work => r,
        _ = cancel.cancelled() => Err(crate::error::Error::interrupted().into()),
    }
}

/// Opens `--repo` (or the default local repository).
pub async fn open_repo(args: &RepoArgs) -> Result<Arc<dyn Storage>> {
    let url = match &args.repo {
        Some(r) => RepoUrl::parse(r)?,
        None => RepoUrl::default_local(),
    };
    let opts = S3Options {
        endpoint: args.s3_endpoint.clone().filter(|e| !e.is_empty()),
        region: args.s3_region.clone().filter(|r| !r.is_empty()),
        force_path_style: args.s3_force_path_style,
    };
    storage::open(&url, &opts).await
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
