//! `pgsafe verify`: prove backups restore. Without a server: both SHA-256s and pg_restore reading
//! the table of contents. With `--restore-to`: also a restore into a scratch database on a staging
//! server and the integrity check, the scratch database always dropped. Each result is recorded
//! beside the backup in the repository.

use std::time::Instant;

use anyhow::Result;
use chrono::Utc;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{finish_job, open_repo, print_json, Ctx};
use crate::catalog::verification::{self, Level, Step, Verification};
use crate::catalog::{self, Manifest};
use crate::cli::VerifyArgs;
use crate::config::{redact_url, Config};
use crate::error::{classify, exit, Error, Kind};
use crate::notify::Notifier;
use crate::pg::ConnInfo;
use crate::restore::drill::{self, Drill};
use crate::restore::fetch;
use crate::storage::Storage;

#[derive(Debug, Serialize)]
struct Verified {
    backup_id: String,
    database: String,
    #[serde(flatten)]
    record: Verification,
}

pub async fn run(
    args: VerifyArgs,
    config: &Config,
    ctx: Ctx,
    cancel: CancellationToken,
) -> Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    let restore_to = match (&args.restore_to, args.drill) {
        (Some(url), _) => Some(url.clone()),
        (None, true) => Some(config.restore_to(&env)?.ok_or_else(|| {
            Error::usage("--drill needs a staging server")
                .hint("set [verify] restore_to or restore_to_env in the configuration, or give --restore-to URL")
        })?),
        (None, false) => None,
    };
    let staging = restore_to
        .as_deref()
        .map(|u| ConnInfo::resolve(Some(u), &env))
        .transpose()?;
    let storage = open_repo(&args.repo, config).await?;
    let notifier = Notifier::new(&args.notify, config);
    notifier.start().await;
    let started = Utc::now();

    let outcome = verify_all(
        &args,
        config,
        staging.as_ref(),
        storage.as_ref(),
        ctx,
        &cancel,
    )
    .await;
    let (results, error) = match outcome {
        Ok((results, error)) => (results, error),
        Err(e) => (Vec::new(), Some(e)),
    };
    let databases: Vec<String> = results.iter().map(|r| r.database.clone()).collect();
    let value = serde_json::to_value(&results)?;
    finish_job(
        "verify",
        started,
        &notifier,
        storage.as_ref(),
        databases,
        value,
        Vec::new(),
        error.as_ref(),
    )
    .await;
    if ctx.json {
        print_json(&results)?;
    } else {
        for r in &results {
            print_human(r);
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Verifies every backup asked for; returns the results and the worst error, if any.
async fn verify_all(
    args: &VerifyArgs,
    config: &Config,
    staging: Option<&ConnInfo>,
    storage: &dyn Storage,
    ctx: Ctx,
    cancel: &CancellationToken,
) -> Result<(Vec<Verified>, Option<anyhow::Error>)> {
    let manifests: Vec<Manifest> = if args.all {
        let listing = catalog::list(storage, args.database.as_deref(), false).await?;
        if listing.backups.is_empty() {
            return Err(Error::corrupt(format!(
                "no complete backup{} in {}",
                args.database
                    .as_deref()
                    .map(|d| format!(" of database {d:?}"))
                    .unwrap_or_default(),
                storage.describe()
            ))
            .into());
        }
        listing.backups
    } else {
        let id = args
            .id
            .as_deref()
            .expect("clap requires an ID without --all");
        vec![catalog::resolve(storage, id, args.database.as_deref()).await?]
    };
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for m in &manifests {
        let mut smoke = config.smoke_for(&m.database);
        smoke.extend(args.smoke_sql.iter().cloned());
        let drill = staging.map(|server| Drill {
            server,
            jobs: args.jobs.unwrap_or(cpus).max(1),
            smoke_sql: &smoke,
            progress: ctx.progress,
        });
        let (record, error) = verify_one(storage, m, drill.as_ref(), args, ctx, cancel).await;
        if let Err(e) =
            verification::record(storage, &m.database, &m.backup_id, record.clone()).await
        {
            tracing::warn!(
                "could not record the verification of {} in the repository: {e:#}",
                m.backup_id
            );
        }
        results.push(Verified {
            backup_id: m.backup_id.clone(),
            database: m.database.clone(),
            record,
        });
        if let Some(e) = error {
            let stop = crate::error::is_interrupted(&e);
            errors.push(e);
            if stop {
                break;
            }
        }
    }
    Ok((results, worst(errors, manifests.len())))
}

async fn verify_one(
    storage: &dyn Storage,
    m: &Manifest,
    drill: Option<&Drill<'_>>,
    args: &VerifyArgs,
    ctx: Ctx,
    cancel: &CancellationToken,
) -> (Verification, Option<anyhow::Error>) {
    let clock = Instant::now();
    let at = Utc::now();
    let mut steps = Vec::new();
    let scratch = drill.map(|_| drill::scratch_name(&m.database));
    let mut checks_run = 0;
    let mut failed_checks = Vec::new();
    let outcome: Result<()> = async {
        let t = Instant::now();
        let fetched = fetch::fetch_into(
            storage,
            m,
            args.fetch.pg_bin_dir.as_deref(),
            &args.fetch.work_dir(),
            "verify",
            ctx.progress,
            cancel,
        )
        .await;
        steps.push(Step {
            step: "download, SHA-256 and table of contents".into(),
            ok: fetched.is_ok(),
            seconds: t.elapsed().as_secs_f64(),
        });
        let (_work, fetched) = fetched?;
        if m.globals.is_some() {
            let t = Instant::now();
            let globals = fetch::fetch_globals(storage, m).await;
            steps.push(Step {
                step: "globals SHA-256".into(),
                ok: globals.is_ok(),
                seconds: t.elapsed().as_secs_f64(),
            });
            globals?;
        }
        let (Some(drill), Some(scratch)) = (drill, scratch.as_deref()) else {
            return Ok(());
        };
        let pg_restore = fetch::pg_restore_for(m, args.fetch.pg_bin_dir.as_deref())?;
        let report = drill
            .run(m, &pg_restore, &fetched, scratch, &mut steps, cancel)
            .await?;
        checks_run = report.checks.len();
        if !report.ok {
            failed_checks = report
                .failures()
                .map(|c| format!("{}: {}", c.check, c.detail))
                .collect();
            if !ctx.json {
                eprint!("{}", report.table());
            }
            return Err(Error::integrity(format!(
                "backup {} restored, but the integrity check failed: {}",
                m.backup_id,
                failed_checks.join("; ")
            ))
            .hint("the backup does not hold what its manifest says; do not rely on it")
            .into());
        }
        Ok(())
    }
    .await;
    let (ok, result, error) = match outcome {
        Ok(()) => (true, "verified".to_string(), None),
        Err(e) => {
            let result = match classify(&e).0 {
                exit::CORRUPT => "corrupt",
                exit::INTEGRITY => "integrity failed",
                exit::INTERRUPTED => "interrupted",
                _ => "failed",
            };
            (false, result.to_string(), Some(e))
        }
    };
    let record = Verification {
        at,
        level: if drill.is_some() {
            Level::Restore
        } else {
            Level::Archive
        },
        ok,
        result,
        host: catalog::audit::host(),
        pgsafe_version: env!("CARGO_PKG_VERSION").to_string(),
        restore_to: drill.map(|d| redact_url(&d.server.redacted())),
        scratch_database: scratch,
        steps,
        failed_checks,
        checks_run,
        error: error.as_ref().map(|e| format!("{e:#}")),
        duration_seconds: clock.elapsed().as_secs_f64(),
    };
    (record, error)
}

/// One error standing for all: the most serious kind decides the exit code.
fn worst(errors: Vec<anyhow::Error>, total: usize) -> Option<anyhow::Error> {
    let rank = |e: &anyhow::Error| match classify(e).0 {
        exit::INTERRUPTED => 5,
        exit::CORRUPT => 4,
        exit::INTEGRITY => 3,
        exit::FAILED => 2,
        _ => 1,
    };
    let n = errors.len();
    if n <= 1 {
        return errors.into_iter().next();
    }
    let worst = errors.into_iter().max_by_key(rank)?;
    let kind = match classify(&worst).0 {
        exit::INTERRUPTED => Kind::Interrupted,
        exit::CORRUPT => Kind::Corrupt,
        exit::INTEGRITY => Kind::Integrity,
        exit::USAGE => Kind::Usage,
        _ => Kind::Failed,
    };
    Some(
        Error::new(
            kind,
            format!("{n} of {total} backups failed verification; the most serious: {worst:#}"),
        )
        .into(),
    )
}

fn print_human(r: &Verified) {
    let v = &r.record;
    let level = match v.level {
        Level::Archive => "checksums and table of contents",
        Level::Restore => "restored and checked",
    };
    if v.ok {
        println!(
            "verified {} ({level}{}) in {}",
            r.backup_id,
            if v.checks_run > 0 {
                format!(", {} checks", v.checks_run)
            } else {
                String::new()
            },
            crate::output::duration(std::time::Duration::from_secs_f64(v.duration_seconds))
        );
    } else {
        println!("FAILED   {} ({}): {}", r.backup_id, v.result, level);
    }
}
