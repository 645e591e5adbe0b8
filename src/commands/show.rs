//! `pgsafe show ID|latest`: one backup's manifest.

use anyhow::Result;

use super::{open_repo, print_json, Ctx};
use crate::catalog::{self, verification};
use crate::cli::ShowArgs;
use crate::config::Config;
use crate::output;

pub async fn run(args: ShowArgs, config: &Config, ctx: Ctx) -> Result<()> {
    let storage = open_repo(&args.repo, config).await?;
    let m = catalog::resolve(storage.as_ref(), &args.id, args.database.as_deref()).await?;
    let history = verification::load(
        storage.as_ref(),
        &verification::key(&m.database, &m.backup_id),
    )
    .await?
    .unwrap_or_default();
    if ctx.json {
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            #[serde(flatten)]
            manifest: &'a catalog::Manifest,
            verified: Option<&'a verification::Verification>,
            verifications: &'a [verification::Verification],
        }
        return print_json(&Shown {
            manifest: &m,
            verified: history.last_ok(),
            verifications: &history.verifications,
        });
    }
    let secs = (m.finished_at - m.started_at).num_milliseconds().max(0) as f64 / 1000.0;
    println!("backup      {}", m.backup_id);
    println!("database    {}", m.database);
    println!("tag         {}", m.tag.as_deref().unwrap_or("-"));
    println!("source      {}", m.source);
    println!(
        "taken       {} to {} ({})",
        m.started_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        m.finished_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        output::duration(std::time::Duration::from_secs_f64(secs))
    );
    println!(
        "server      PostgreSQL {} ({}, collate {}, ctype {})",
        m.server.version, m.server.encoding, m.server.lc_collate, m.server.lc_ctype
    );
    println!(
        "pg_dump     {} (pgsafe {})",
        m.pg_dump_version, m.pgsafe_version
    );
    println!(
        "object      {} ({}, {})",
        m.object.key,
        m.object.compression,
        output::bytes(m.object.bytes)
    );
    println!("sha256      {}", m.object.sha256);
    println!(
        "archive     {} raw, sha256 {}",
        output::bytes(m.archive.bytes),
        m.archive.sha256
    );
    match history.last_ok() {
        Some(v) => println!(
            "verified    {} ({:?}{})",
            v.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            v.level,
            v.restore_to
                .as_deref()
                .map(|t| format!(", restored into {t}"))
                .unwrap_or_default()
        ),
        None => println!("verified    never"),
    }
    if let Some(last) = history.verifications.last().filter(|v| !v.ok) {
        println!(
            "last check  {} FAILED: {}",
            last.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            last.error.as_deref().unwrap_or(&last.result)
        );
    }
    for a in &m.anomalies {
        println!("ANOMALY     {a}");
    }
    if let Some(g) = &m.globals {
        println!(
            "globals     {} ({}, sha256 {})",
            g.object.key,
            output::bytes(g.object.bytes),
            g.object.sha256
        );
    }
    let ext: Vec<String> = m
        .extensions
        .iter()
        .map(|e| format!("{} {}", e.name, e.version))
        .collect();
    println!("extensions  {}", ext.join(", "));
    println!("tables      {} ({} rows)", m.tables.len(), m.total_rows());
    let rows: Vec<Vec<String>> = m
        .tables
        .iter()
        .map(|t| vec![format!("{}.{}", t.schema, t.name), t.rows.to_string()])
        .collect();
    print!("{}", output::table(&["  TABLE", "ROWS"], &rows));
    Ok(())
}
