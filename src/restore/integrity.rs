//! The integrity check: proves a restored database matches its backup. Every table's row count
//! equals the manifest's; every table, sequence, index, view, function and constraint of the
//! archive's table of contents exists; no index is invalid and no constraint unvalidated; no
//! sequence is behind its column; the user's smoke checks return true.

use anyhow::Result;
use serde::Serialize;
use tokio_postgres::Client;

use super::toc::Entry;
use crate::catalog::Manifest;
use crate::pg::quote_ident;
use crate::pg::session::pg_error_text;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub database: String,
    pub backup_id: String,
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    /// A human table: one line per check.
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .checks
            .iter()
            .map(|c| {
                vec![
                    if c.ok { "ok" } else { "FAILED" }.to_string(),
                    c.check.clone(),
                    c.detail.clone(),
                ]
            })
            .collect();
        crate::output::table(&["RESULT", "CHECK", "DETAIL"], &rows)
    }
}

fn check(name: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        check: name.into(),
        ok,
        detail: detail.into(),
    }
}

/// Runs every check against the connected database (the restored one).
pub async fn run(
    client: &Client,
    database: &str,
    manifest: &Manifest,
    toc: &[Entry],
    smoke: &[String],
) -> Result<Report> {
    let mut checks = Vec::new();
    row_counts(client, manifest, &mut checks).await?;
    objects(client, toc, &mut checks).await?;
    invalid_indexes(client, &mut checks).await?;
    unvalidated_constraints(client, &mut checks).await?;
    sequences(client, &mut checks).await?;
    for sql in smoke {
        let result = client.query_one(sql.as_str(), &[]).await;
        checks.push(match result {
            Ok(row) => match row.try_get::<_, Option<bool>>(0) {
                Ok(Some(true)) => check("smoke", true, sql.clone()),
                Ok(other) => check(
                    "smoke",
                    false,
                    format!("{sql} returned {other:?}, not true"),
                ),
                Err(_) => check("smoke", false, format!("{sql} does not return a boolean")),
            },
            Err(e) => check(
                "smoke",
                false,
                format!("{sql} failed: {}", pg_error_text(&e)),
            ),
        });
    }
    let ok = checks.iter().all(|c| c.ok);
    Ok(Report {
        database: database.to_string(),
        backup_id: manifest.backup_id.clone(),
        ok,
        checks,
    })
}

async fn row_counts(client: &Client, manifest: &Manifest, checks: &mut Vec<Check>) -> Result<()> {
    let mut wrong = Vec::new();
    for t in &manifest.tables {
        let exists: bool = client
            .query_one(
                "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
                &[&t.schema, &t.name],
            )
            .await?
            .get(0);
        if !exists {
            wrong.push(format!("{}.{} is missing", t.schema, t.name));
            continue;
        }
        let q = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(&t.schema),
            quote_ident(&t.name)
        );
        let n: i64 = client.query_one(q.as_str(), &[]).await?.get(0);
        if n != t.rows {
            wrong.push(format!(
                "{}.{}: {n} rows, the backup has {}",
                t.schema, t.name, t.rows
            ));
        }
    }
    checks.push(if wrong.is_empty() {
        check(
            "row counts",
            true,
            format!(
                "{} tables, {} rows as in the backup",
                manifest.tables.len(),
                manifest.total_rows()
            ),
        )
    } else {
        check("row counts", false, wrong.join("; "))
    });
    Ok(())
}

/// The relkinds a table-of-contents description means.
fn relkinds(desc: &str) -> Option<&'static [&'static str]> {
    Some(match desc {
        "TABLE" => &["r", "p"],
        "SEQUENCE" => &["S"],
        "INDEX" => &["i", "I"],
        "VIEW" => &["v"],
        "MATERIALIZED VIEW" => &["m"],
        _ => return None,
    })
}

async fn objects(client: &Client, toc: &[Entry], checks: &mut Vec<Check>) -> Result<()> {
    let mut missing = Vec::new();
    let mut seen = 0;
    for e in toc {
        let exists: bool = if let Some(kinds) = relkinds(&e.desc) {
            let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
            client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind::text = ANY($3))",
                    &[&e.schema, &e.name, &kinds],
                )
                .await?
                .get(0)
        } else if matches!(e.desc.as_str(), "FUNCTION" | "PROCEDURE" | "AGGREGATE") {
            client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                     WHERE n.nspname = $1
                                       AND p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' = $2)",
                    &[&e.schema, &e.name],
                )
                .await?
                .get(0)
        } else if matches!(
            e.desc.as_str(),
            "CONSTRAINT" | "FK CONSTRAINT" | "CHECK CONSTRAINT"
        ) {
            client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_constraint c
                                      JOIN pg_namespace n ON n.oid = c.connamespace
                                      LEFT JOIN pg_class r ON r.oid = c.conrelid
                                      LEFT JOIN pg_type t ON t.oid = c.contypid
                                     WHERE n.nspname = $1
                                       AND coalesce(r.relname, t.typname) || ' ' || c.conname = $2)",
                    &[&e.schema, &e.name],
                )
                .await?
                .get(0)
        } else {
            continue;
        };
        seen += 1;
        if !exists {
            missing.push(format!("{} {}.{}", e.desc, e.schema, e.name));
        }
    }
    checks.push(if missing.is_empty() {
        check(
            "objects",
            true,
            format!(
                "all {seen} tables, sequences, indexes, views, functions and constraints exist"
            ),
        )
    } else {
        check("objects", false, format!("missing: {}", missing.join("; ")))
    });
    Ok(())
}

async fn invalid_indexes(client: &Client, checks: &mut Vec<Check>) -> Result<()> {
    let rows = client
        .query("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid OR NOT indisready", &[])
        .await?;
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    checks.push(check(
        "valid indexes",
        names.is_empty(),
        if names.is_empty() {
            "no invalid index".to_string()
        } else {
            format!("invalid: {}", names.join(", "))
        },
    ));
    Ok(())
}

async fn unvalidated_constraints(client: &Client, checks: &mut Vec<Check>) -> Result<()> {
    let rows = client
        .query(
            "SELECT coalesce(conrelid::regclass::text, contypid::regtype::text) || ' ' || conname
               FROM pg_constraint WHERE NOT convalidated",
            &[],
        )
        .await?;
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    checks.push(check(
        "validated constraints",
        names.is_empty(),
        if names.is_empty() {
            "every constraint validated".to_string()
        } else {
            format!("not validated: {}", names.join(", "))
        },
    ));
    Ok(())
}

/// A sequence behind its column's maximum would hand out ids that already exist.
async fn sequences(client: &Client, checks: &mut Vec<Check>) -> Result<()> {
    let owned = client
        .query(
            "SELECT format('%I.%I', sn.nspname, s.relname), format('%I.%I', tn.nspname, t.relname),
                    quote_ident(a.attname)
               FROM pg_class s
               JOIN pg_namespace sn ON sn.oid = s.relnamespace
               JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
                               AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
               JOIN pg_class t ON t.oid = d.refobjid
               JOIN pg_namespace tn ON tn.oid = t.relnamespace
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
              WHERE s.relkind = 'S' AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)",
            &[],
        )
        .await?;
    let mut behind = Vec::new();
    for row in &owned {
        let (seq, table, column): (String, String, String) = (row.get(0), row.get(1), row.get(2));
        let s = client
            .query_one(&format!("SELECT last_value, is_called FROM {seq}"), &[])
            .await?;
        let (last, called): (i64, bool) = (s.get(0), s.get(1));
        let next_free = if called { last } else { last - 1 };
        let max: Option<i64> = client
            .query_one(&format!("SELECT max({column})::int8 FROM {table}"), &[])
            .await?
            .get(0);
        if let Some(max) = max.filter(|m| *m > next_free) {
            behind.push(format!(
                "{seq} is at {next_free}, {table}.{column} reaches {max}"
            ));
        }
    }
    checks.push(check(
        "sequences",
        behind.is_empty(),
        if behind.is_empty() {
            format!("{} sequences ahead of their columns", owned.len())
        } else {
            behind.join("; ")
        },
    ));
    Ok(())
}
