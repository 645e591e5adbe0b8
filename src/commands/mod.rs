//! One module per subcommand; each orchestrates the library pieces and prints results on stdout.

pub mod audit;
pub mod backup;
pub mod check;
pub mod config;
pub mod download;
pub mod list;
pub mod prune;
pub mod restore;
pub mod schedule;
pub mod show;
pub mod verify;

use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::cli::{Cli, Command, ConfigCommand, RepoArgs};
use crate::config::Config;
use crate::error::classify;
use crate::notify::{Event, Notifier};
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
    let config = Config::load(cli.output.config.as_deref())?;
    let c = &config;
    match cli.command {
        // Commands that change something handle cancellation themselves, to clean up.
        Command::Backup(args) => backup::run(args, c, ctx, cancel).await,
        Command::List(args) => stop_on_signal(list::run(args, c, ctx), &cancel).await,
        Command::Show(args) => stop_on_signal(show::run(args, c, ctx), &cancel).await,
        Command::Restore(args) => restore::run(args, c, ctx, cancel).await,
        Command::Check(args) => check::run(args, c, ctx, cancel).await,
        Command::Download(args) => download::run(args, c, ctx, cancel).await,
        Command::Audit(args) => stop_on_signal(audit::run(args, c, ctx), &cancel).await,
        Command::Verify(args) => verify::run(args, c, ctx, cancel).await,
        Command::Prune(args) => prune::run(args, c, ctx, cancel).await,
        Command::Schedule(args) => schedule::run(args, c, &cli.output, cancel).await,
        Command::Config(ConfigCommand::Check(args)) => config::check(args, c, ctx).await,
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

/// The repository settings in effect: flags and environment first, then the configuration.
pub fn repo_settings(args: &RepoArgs, config: &Config) -> Result<(RepoUrl, S3Options)> {
    let r = &config.repository;
    let url = match args.repo.as_deref().or(r.url.as_deref()) {
        Some(repo) => RepoUrl::parse(repo)?,
        None => RepoUrl::default_local(),
    };
    let opts = S3Options {
        endpoint: args
            .s3_endpoint
            .clone()
            .or_else(|| r.s3_endpoint.clone())
            .filter(|e| !e.is_empty()),
        region: args
            .s3_region
            .clone()
            .or_else(|| r.s3_region.clone())
            .filter(|r| !r.is_empty()),
        force_path_style: args.s3_force_path_style || r.s3_force_path_style,
    };
    Ok((url, opts))
}

/// Opens `--repo` (or the configuration's, or the default local repository).
pub async fn open_repo(args: &RepoArgs, config: &Config) -> Result<Arc<dyn Storage>> {
    let (url, opts) = repo_settings(args, config)?;
    storage::open(&url, &opts).await
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The end of an unattended job (backup, prune, verify): notifications and the metrics file.
/// Neither can change the job's result; their failures are logged.
#[allow(clippy::too_many_arguments)]
pub async fn finish_job(
    job: &str,
    started_at: DateTime<Utc>,
    notifier: &Notifier,
    storage: &dyn Storage,
    databases: Vec<String>,
    results: serde_json::Value,
    anomalies: Vec<String>,
    error: Option<&anyhow::Error>,
) {
    let event = Event {
        job: job.to_string(),
        name: notifier.job_name().unwrap_or(job).to_string(),
        status: if error.is_none() {
            "success"
        } else {
            "failure"
        }
        .into(),
        exit_code: error.map(|e| classify(e).0).unwrap_or(0),
        host: crate::catalog::audit::host(),
        started_at,
        finished_at: Utc::now(),
        databases,
        results,
        anomalies,
        error: error.map(|e| format!("{e:#}")),
        pgsafe_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    notifier.finish(&event).await;
    if let Some(path) = notifier.metrics_file() {
        let run = crate::metrics::JobRun {
            job: event.name.clone(),
            ok: error.is_none(),
            at: event.finished_at,
        };
        let written = match crate::catalog::list(storage, None, false).await {
            Ok(listing) => crate::metrics::write(path, &listing, Some(run)),
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            warn!("could not write the metrics file {}: {e:#}", path.display());
        }
    }
}
