//! `pgsafe restore`: builds the restore's options and prints its outcome.

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::{open_repo, print_json, Ctx};
use crate::catalog::audit;
use crate::cli::{RestoreArgs, StrategyArg};
use crate::config::Config;
use crate::pg::ConnInfo;
use crate::restore::{self, Options, Outcome, Restore, Strategy};

pub async fn run(
    args: RestoreArgs,
    config: &Config,
    ctx: Ctx,
    cancel: CancellationToken,
) -> Result<()> {
    let target = ConnInfo::resolve(Some(&args.target), &|k| std::env::var(k).ok())?;
    if let Some(spec) = &args.migrations_table {
        crate::pg::migrations::parse_custom(spec)?;
    }
    let storage = open_repo(&args.repo, config).await?;
    let target_db = target.dbname().to_string();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let opts = Options {
        backup: args.id.clone().unwrap_or_default(),
        database: args.database.clone(),
        target,
        maintenance_db: args.maintenance_db.clone(),
        strategy: match args.strategy {
            StrategyArg::Fresh => Strategy::Fresh,
            StrategyArg::Clean => Strategy::Clean,
        },
        in_place: args.in_place,
        work_dir: args.fetch.work_dir(),
        confirm: args.confirm.clone(),
        reason: args.reason.clone(),
        approved_by: args.approved_by.clone(),
        terminate_connections: args.terminate_connections,
        protected: args
            .protected
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .chain(config.protected_names())
            .collect(),
        allow_protected: args.allow_protected,
        safety_backup: !args.no_safety_backup,
        allow_newer_migrations: args.allow_newer_migrations,
        migrations_table: args
            .migrations_table
            .clone()
            .or_else(|| config.backup.migrations_table.clone()),
        allow_downgrade: args.allow_downgrade,
        jobs: args.jobs.unwrap_or(cpus).max(1),
        with_owner: args.with_owner,
        with_acl: args.with_acl,
        smoke_sql: config
            .smoke_for(&target_db)
            .into_iter()
            .chain(args.smoke_sql.iter().cloned())
            .collect(),
        with_globals: args.with_globals,
        dry_run: args.dry_run,
        pg_bin_dir: args.fetch.pg_bin_dir.clone(),
        audit_log: args.audit_log.clone().unwrap_or_else(audit::default_log),
    };
    if args.strategy == StrategyArg::Clean && !args.dry_run {
        tracing::warn!(
            "Strategy B (clean) is the not-recommended path: it restores over the live schema"
        );
    }
    let outcome = if args.undo {
        restore::undo(opts, storage.as_ref(), cancel).await?
    } else {
        Restore::new(opts, storage.as_ref(), cancel, ctx.progress)
            .run()
            .await?
    };
    if ctx.json {
        return print_json(&outcome);
    }
    print_human(&outcome, args.undo);
    Ok(())
}

fn print_human(o: &Outcome, undo: bool) {
    if o.result == "dry-run" {
        println!("dry run: restore {} into {} would:", o.backup_id, o.target);
        for (i, step) in o.plan.iter().enumerate() {
            println!("  {}. {step}", i + 1);
        }
        println!("nothing was changed");
        return;
    }
    if undo {
        println!("undo complete: {}", o.plan.join("; "));
        if let Some(p) = &o.previous_database {
            println!("  the restored database is kept as {p}");
        }
        return;
    }
    println!("restore of {} into {} complete", o.backup_id, o.target);
    let strategy = match o.strategy {
        crate::restore::Strategy::Clean => "clean (Strategy B)",
        _ if o.in_place => "fresh (Strategy A), in place",
        _ if o.previous_database.is_some() => "fresh (Strategy A), staged, then swapped in",
        _ => "fresh (Strategy A), into a new database",
    };
    println!("  strategy         {strategy}");
    if let Some(s) = &o.safety_backup {
        println!("  safety backup    {s}");
    }
    if let Some(r) = &o.integrity {
        println!("  integrity        {} checks passed", r.checks.len());
    }
    if let Some(p) = &o.previous_database {
        println!("  previous kept as {p}");
        println!("  to swap back:    pgsafe restore --undo --target <same URL> --confirm <db> --reason \"...\"");
    }
    println!(
        "  took             {}",
        crate::output::duration(std::time::Duration::from_secs_f64(o.duration_seconds))
    );
}
