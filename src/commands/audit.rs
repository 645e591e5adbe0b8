//! `pgsafe audit`: the audit records of restores and refusals stored in the repository.

use anyhow::Result;

use super::{open_repo, print_json, Ctx};
use crate::catalog::audit;
use crate::cli::AuditArgs;
use crate::config::Config;
use crate::output;

pub async fn run(args: AuditArgs, config: &Config, ctx: Ctx) -> Result<()> {
    let storage = open_repo(&args.repo, config).await?;
    let mut records = audit::list(storage.as_ref()).await?;
    if let Some(db) = &args.database {
        records.retain(|r| &r.database == db);
    }
    if ctx.json {
        return print_json(&records);
    }
    if records.is_empty() {
        println!("no audit records in {}", storage.describe());
        return Ok(());
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                r.action.clone(),
                r.database.clone(),
                r.strategy.clone(),
                r.result.clone(),
                r.operator.clone(),
                r.backup_id.clone().unwrap_or_else(|| "-".into()),
                r.reason.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print!(
        "{}",
        output::table(
            &["TIME", "ACTION", "DATABASE", "STRATEGY", "RESULT", "OPERATOR", "BACKUP", "REASON"],
            &rows
        )
    );
    Ok(())
}
