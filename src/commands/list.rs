//! `pgsafe list`: complete backups from their manifests; what failed runs left, apart.

use anyhow::Result;
use serde::Serialize;

use super::{open_repo, print_json, Ctx};
use crate::catalog::{self, Leftover, Manifest};
use crate::cli::ListArgs;
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
}

impl<'a> From<&'a Manifest> for Row<'a> {
    fn from(m: &'a Manifest) -> Self {
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
        }
    }
}

#[derive(Serialize)]
struct Listing<'a> {
    repository: String,
    backups: Vec<Row<'a>>,
    incomplete: &'a [Leftover],
}

pub async fn run(args: ListArgs, ctx: Ctx) -> Result<()> {
    let storage = open_repo(&args.repo).await?;
    let listing = catalog::list(storage.as_ref(), args.database.as_deref(), true).await?;
    if ctx.json {
        return print_json(&Listing {
            repository: storage.describe(),
            backups: listing.backups.iter().map(Row::from).collect(),
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
                let r = Row::from(m);
                vec![
                    r.backup_id.to_string(),
                    r.database.to_string(),
                    r.tag.unwrap_or("-").to_string(),
                    output::duration(std::time::Duration::from_secs_f64(
                        r.duration_seconds.max(0.0),
                    )),
                    output::bytes(r.raw_bytes),
                    output::bytes(r.stored_bytes),
                    r.total_rows.to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            output::table(
                &["ID", "DATABASE", "TAG", "TOOK", "RAW", "STORED", "ROWS"],
                &rows
            )
        );
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
