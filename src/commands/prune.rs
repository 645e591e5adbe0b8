//! `pgsafe prune`: apply each database's retention policy (a dry run unless `--yes`), and clean up
//! what failed runs left behind. Only objects a manifest of that database names are ever
//! removed as backups; leftovers are removed only past `--stale-after`.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::Utc;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{finish_job, open_repo, print_json, Ctx};
use crate::catalog::retention::{self, Candidate, Decision, Policy};
use crate::catalog::{self, id, Leftover, Manifest};
use crate::cli::PruneArgs;
use crate::config::Config;
use crate::error::Error;
use crate::notify::Notifier;
use crate::output;
use crate::storage::Storage;

#[derive(Debug, Serialize)]
struct DatabasePlan {
    database: String,
    policy: String,
    backups: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Row {
    backup_id: String,
    started_at: String,
    tag: Option<String>,
    keep: bool,
    reasons: Vec<String>,
    /// `kept`, `would remove`, `removed` or `failed: ...`.
    action: String,
}

#[derive(Debug, Serialize)]
struct LeftoverRow {
    key: String,
    kind: String,
    since: Option<String>,
    action: String,
}

#[derive(Debug, Serialize)]
struct Report {
    repository: String,
    dry_run: bool,
    databases: Vec<DatabasePlan>,
    leftovers: Vec<LeftoverRow>,
    removed_backups: usize,
}

pub async fn run(
    args: PruneArgs,
    config: &Config,
    ctx: Ctx,
    cancel: CancellationToken,
) -> Result<()> {
    let stale_after = retention::parse_duration(&args.stale_after)
        .map_err(|e| Error::usage(format!("--stale-after: {e}")))?;
    let flags_policy = flags_policy(&args)?;
    let storage = open_repo(&args.repo, config).await?;
    let notifier = Notifier::new(&args.notify, config);
    if args.yes {
        notifier.start().await;
    }
    let started = Utc::now();
    let outcome = prune(
        &args,
        config,
        flags_policy.as_ref(),
        stale_after,
        storage.as_ref(),
        &cancel,
    )
    .await;
    let (report, error) = match outcome {
        Ok((r, e)) => (Some(r), e),
        Err(e) => (None, Some(e)),
    };
    if args.yes {
        let dbs = report
            .as_ref()
            .map(|r| r.databases.iter().map(|d| d.database.clone()).collect())
            .unwrap_or_default();
        finish_job(
            "prune",
            started,
            &notifier,
            storage.as_ref(),
            dbs,
            serde_json::to_value(&report)?,
            Vec::new(),
            error.as_ref(),
        )
        .await;
    }
    if let Some(report) = &report {
        if ctx.json {
            print_json(report)?;
        } else {
            print_human(report);
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The policy the flags give, when any keep flag is set (it then replaces the configured one).
fn flags_policy(args: &PruneArgs) -> Result<Option<Policy>> {
    let p = Policy {
        keep_last: args.keep_last,
        keep_hourly: args.keep_hourly,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        keep_yearly: args.keep_yearly,
        keep_within: args.keep_within.clone(),
        prune_tagged: args.prune_tagged,
        prune_pre_restore: args.prune_pre_restore,
    };
    p.validate()
        .map_err(|e| Error::usage(format!("--keep-within: {e}")))?;
    Ok((!p.is_empty()).then_some(p))
}

async fn prune(
    args: &PruneArgs,
    config: &Config,
    flags_policy: Option<&Policy>,
    stale_after: std::time::Duration,
    storage: &dyn Storage,
    cancel: &CancellationToken,
) -> Result<(Report, Option<anyhow::Error>)> {
    let listing = catalog::list(storage, args.database.as_deref(), true).await?;
    let mut by_db: BTreeMap<&str, Vec<&Manifest>> = BTreeMap::new();
    for m in &listing.backups {
        by_db.entry(&m.database).or_default().push(m);
    }
    // Decide everything before deleting anything: a policy error changes nothing.
    let mut plans = Vec::new();
    for (db, backups) in &by_db {
        let mut policy = flags_policy
            .cloned()
            .unwrap_or_else(|| config.policy_for(db));
        policy.prune_tagged |= args.prune_tagged;
        policy.prune_pre_restore |= args.prune_pre_restore;
        if policy.is_empty() {
            return Err(Error::usage(format!(
                "no retention policy for database {db:?}: nothing says what to keep"
            ))
            .hint("give --keep-last/--keep-daily/... or set [retention] in the configuration")
            .into());
        }
        let candidates: Vec<Candidate> = backups
            .iter()
            .map(|m| Candidate {
                id: m.backup_id.clone(),
                time: m.started_at,
                tag: m.tag.clone(),
                verified: listing.verified(&m.backup_id).is_some(),
            })
            .collect();
        let decisions = retention::decide(&policy, &candidates).map_err(Error::usage)?;
        plans.push((db.to_string(), policy, decisions));
    }
    let manifests: BTreeMap<&str, &Manifest> = listing
        .backups
        .iter()
        .map(|m| (m.backup_id.as_str(), m))
        .collect();

    let mut errors = Vec::new();
    let mut removed_backups = 0;
    let mut databases = Vec::new();
    for (db, policy, decisions) in plans {
        let mut rows = Vec::new();
        for Decision { id, keep, reasons } in decisions {
            let m = manifests[id.as_str()];
            let action = if keep {
                "kept".to_string()
            } else if !args.yes {
                "would remove".to_string()
            } else if cancel.is_cancelled() {
                "not removed (interrupted)".to_string()
            } else {
                match remove_backup(storage, m).await {
                    Ok(()) => {
                        removed_backups += 1;
                        info!("removed backup {id}");
                        "removed".to_string()
                    }
                    Err(e) => {
                        let msg = format!("failed: {e:#}");
                        errors.push(e.context(format!("could not remove backup {id}")));
                        msg
                    }
                }
            };
            rows.push(Row {
                backup_id: id,
                started_at: m
                    .started_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                tag: m.tag.clone(),
                keep,
                reasons,
                action,
            });
        }
        databases.push(DatabasePlan {
            database: db,
            policy: policy.describe(),
            backups: rows,
        });
    }
    let mut leftovers = Vec::new();
    for l in &listing.leftovers {
        let action = leftover_action(storage, l, stale_after, args.yes, cancel, &mut errors).await;
        leftovers.push(LeftoverRow {
            key: l.key.clone(),
            kind: l.kind.clone(),
            since: l
                .since
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            action,
        });
    }
    let error = if cancel.is_cancelled() {
        Some(Error::interrupted().into())
    } else if errors.is_empty() {
        None
    } else {
        let n = errors.len();
        let first = errors.remove(0);
        Some(first.context(format!("{n} removals failed; run prune again")))
    };
    Ok((
        Report {
            repository: storage.describe(),
            dry_run: !args.yes,
            databases,
            leftovers,
            removed_backups,
        },
        error,
    ))
}

/// Deletes one backup's keys, the manifest first. Every key must sit in the database's own
/// folder: a manifest naming anything else is not trusted with a deletion.
async fn remove_backup(storage: &dyn Storage, m: &Manifest) -> Result<()> {
    let folder = format!("{}/", id::slug(&m.database));
    let keys = m.keys();
    if let Some(bad) = keys.iter().find(|k| !k.starts_with(&folder)) {
        return Err(Error::corrupt(format!(
            "manifest {} names {bad}, outside {folder}; nothing of it was removed",
            m.backup_id
        ))
        .into());
    }
    for key in keys {
        storage.delete(&key).await?;
    }
    Ok(())
}

async fn leftover_action(
    storage: &dyn Storage,
    l: &Leftover,
    stale_after: std::time::Duration,
    yes: bool,
    cancel: &CancellationToken,
    errors: &mut Vec<anyhow::Error>,
) -> String {
    if l.kind == "invalid manifest" {
        return "kept (a damaged manifest needs a human: inspect it)".into();
    }
    let Some(since) = l.since else {
        return "kept (age unknown)".into();
    };
    let age = (Utc::now() - since).to_std().unwrap_or_default();
    if age < stale_after {
        return format!(
            "kept (younger than {}: a run may still be writing it)",
            humantime::format_duration(stale_after)
        );
    }
    if !yes {
        return "would remove".into();
    }
    if cancel.is_cancelled() {
        return "not removed (interrupted)".into();
    }
    let done = match &l.upload {
        Some(u) => storage.abort_incomplete(u).await,
        None => storage.delete(&l.key).await,
    };
    match done {
        Ok(()) => {
            info!("removed leftover {} ({})", l.key, l.kind);
            "removed".into()
        }
        Err(e) => {
            warn!("could not remove leftover {}: {e:#}", l.key);
            let msg = format!("failed: {e:#}");
            errors.push(e);
            msg
        }
    }
}

fn print_human(r: &Report) {
    if r.databases.is_empty() {
        println!("no backups in {}", r.repository);
    }
    for d in &r.databases {
        println!("{} ({})", d.database, d.policy);
        let rows: Vec<Vec<String>> = d
            .backups
            .iter()
            .map(|b| {
                vec![
                    format!("  {}", b.backup_id),
                    b.tag.clone().unwrap_or_else(|| "-".into()),
                    if b.keep { "keep" } else { "remove" }.into(),
                    if b.reasons.is_empty() {
                        "no rule keeps it".into()
                    } else {
                        b.reasons.join(", ")
                    },
                    b.action.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            output::table(&["  BACKUP", "TAG", "DECISION", "RULE", "ACTION"], &rows)
        );
    }
    if !r.leftovers.is_empty() {
        println!("leftovers of failed runs (not backups):");
        let rows: Vec<Vec<String>> = r
            .leftovers
            .iter()
            .map(|l| {
                vec![
                    format!("  {}", l.key),
                    l.kind.clone(),
                    l.since.clone().unwrap_or_else(|| "-".into()),
                    l.action.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            output::table(&["  KEY", "KIND", "SINCE", "ACTION"], &rows)
        );
    }
    if r.dry_run {
        println!("dry run: nothing was removed; run again with --yes to remove");
    } else {
        println!("{} backups removed", r.removed_backups);
    }
}
