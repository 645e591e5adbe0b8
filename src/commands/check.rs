//! `pgsafe check`: the integrity check of a database against a backup, on its own.

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::{open_repo, print_json, Ctx};
use crate::catalog;
use crate::cli::CheckArgs;
use crate::config::Config;
use crate::error::Error;
use crate::pg::{session, ConnInfo};
use crate::restore::{fetch, integrity};

pub async fn run(
    args: CheckArgs,
    config: &Config,
    ctx: Ctx,
    cancel: CancellationToken,
) -> Result<()> {
    let target = ConnInfo::resolve(Some(&args.target), &|k| std::env::var(k).ok())?;
    let storage = open_repo(&args.repo, config).await?;
    let manifest =
        catalog::resolve(storage.as_ref(), &args.backup, args.database.as_deref()).await?;
    let base = args.fetch.work_dir();
    let (_work, fetched) = fetch::fetch_into(
        storage.as_ref(),
        &manifest,
        args.fetch.pg_bin_dir.as_deref(),
        &base,
        "check",
        ctx.progress,
        &cancel,
    )
    .await?;
    let client = session::connect(&target).await?;
    let mut smoke = config.smoke_for(target.dbname());
    smoke.extend(args.smoke_sql.iter().cloned());
    let report = integrity::run(&client, target.dbname(), &manifest, &fetched.toc, &smoke).await?;
    if ctx.json {
        print_json(&report)?;
    } else {
        println!(
            "integrity of {} against backup {}:",
            target.redacted(),
            manifest.backup_id
        );
        print!("{}", report.table());
    }
    if report.ok {
        Ok(())
    } else {
        let failed: Vec<&str> = report.failures().map(|c| c.check.as_str()).collect();
        Err(Error::integrity(format!("the integrity check failed: {}", failed.join(", "))).into())
    }
}
