//! `pgsafe list`: complete backups from their manifests; what failed runs left, apart.

use anyhow::Result;
use serde::Serialize;

use super::{open_repo, print_json, Ctx};
use crate::catalog::verification::Level;
use crate::catalog::{self, Leftover, Manifest};
use crate::cli::ListArgs;
use crate::config::Config;
use crate::output;

#[derive(Serialize)]
struct Row<'a> {
    backup_id: &'a str,
    database: &'a str,
    tag: Option<&'a str>,
    started_at: String,
    duration_seconds: f64,
    raw_bytes: u64,
    stored_bytes: u64,
    compression: crate::pipeline::Algorithm,
    total_rows: i64,
    sha256: &'a str,
    object_key: &'a str,
    /// The newest successful verification: when, and `archive` or `restore`.
    verified_at: Option<String>,
    verified_level: Option<Level>,
    /// The newest verification's result (`verified`, `corrupt`, ...), even when it failed.
    last_check: Option<&'a str>,
    anomalies: &'a [String],
}

impl<'a> Row<'a> {
    fn new(m: &'a Manifest, listing: &'a catalog::Listing) -> Self {
        let verified = listing.verified(&m.backup_id);
        Row {
            backup_id: &m.backup_id,
            database: &m.database,
            tag: m.tag.as_deref(),
            started_at: m
                .started_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            duration_seconds: (m.finished_at - m.started_at).num_milliseconds() as f64 / 1000.0,
            raw_bytes: m.archive.bytes,
            stored_bytes: m.object.bytes,
            compression: m.object.compression.algorithm,
            total_rows: m.total_rows(),
            sha256: &m.object.sha256,
            object_key: &m.object.key,
            verified_at: verified.map(|v| v.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            verified_level: verified.map(|v| v.level.clone()),
            last_check: listing.last_check(&m.backup_id).map(|v| v.result.as_str()),
            anomalies: &m.anomalies,
        }
    }
}

#[derive(Serialize)]
struct Listing<'a> {
    repository: String,
    backups: Vec<Row<'a>>,
    incomplete: &'a [Leftover],
}

pub async fn run(args: ListArgs, config: &Config, ctx: Ctx) -> Result<()> {
    let storage = open_repo(&args.repo, config).await?;
    let listing = catalog::list(storage.as_ref(), args.database.as_deref(), true).await?;
    if ctx.json {
        return print_json(&Listing {
            repository: storage.describe(),
            backups: listing
                .backups
                .iter()
                .map(|m| Row::new(m, &listing))
                .collect(),
            incomplete: &listing.leftovers,
        });
    }
    if listing.backups.is_empty() {
        println!("no backups in {}", storage.describe());
    } else {
        let rows: Vec<Vec<String>> = listing
            .backups
            .iter()
            .map(|m| {
                let r = Row::new(m, &listing);
                let verified = match (&r.verified_at, &r.verified_level, r.last_check) {
                    // The newest check failed: say so, whatever an older one proved.
                    (_, _, Some(result)) if result != "verified" => format!("FAILED ({result})"),
                    (Some(at), Some(level), _) => {
                        format!("{} ({level:?})", &at[..10]).to_lowercase()
                    }
                    _ => "-".into(),
                };
                let flag = if r.anomalies.is_empty() { "" } else { " !" };
                vec![
                    r.backup_id.to_string(),
                    r.database.to_string(),
                    r.tag.unwrap_or("-").to_string(),
                    output::duration(std::time::Duration::from_secs_f64(
                        r.duration_seconds.max(0.0),
                    )),
                    output::bytes(r.raw_bytes),
                    output::bytes(r.stored_bytes),
                    format!("{}{flag}", r.total_rows),
                    verified,
                ]
            })
            .collect();
        print!(
            "{}",
            output::table(
                &["ID", "DATABASE", "TAG", "TOOK", "RAW", "STORED", "ROWS", "VERIFIED"],
                &rows
            )
        );
    }
    if listing.backups.iter().any(|m| !m.anomalies.is_empty()) {
        println!("! the anomaly guard flagged this backup (`pgsafe show ID` says why)");
    }
    if !listing.leftovers.is_empty() {
        println!("\nincomplete (not backups; left by failed or interrupted runs):");
        let rows: Vec<Vec<String>> = listing
            .leftovers
            .iter()
            .map(|l| {
                vec![
                    l.key.clone(),
                    l.kind.clone(),
                    l.since
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_else(|| "-".into()),
                    l.detail.clone(),
                ]
            })
            .collect();
        print!(
            "{}",
            output::table(&["KEY", "KIND", "SINCE", "DETAIL"], &rows)
        );
    }
    Ok(())
}
