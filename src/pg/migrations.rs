//! Schema migration tables of the usual frameworks: what a database has applied, so Strategy B
//! can refuse to restore an older schema over a newer one.

use std::cmp::Ordering;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::session::pg_error_text;
use crate::error::Error;

/// Known migration tables and the column that orders their entries.
pub const KNOWN: &[(&str, &str)] = &[
    ("_sqlx_migrations", "version"),
    ("schema_migrations", "version"),
    ("knex_migrations", "name"),
    ("_prisma_migrations", "migration_name"),
    ("flyway_schema_history", "installed_rank"),
    ("alembic_version", "version_num"),
    ("django_migrations", "id"),
    ("__diesel_schema_migrations", "version"),
];

/// The newest entry of one migration table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationState {
    pub schema: String,
    pub table: String,
    pub column: String,
    /// The greatest value of the column (alembic: its heads, sorted and joined).
    pub latest: Option<String>,
    pub entries: i64,
}

/// A user-named migration table: `table:column` or `schema.table:column`.
pub fn parse_custom(spec: &str) -> Result<(Option<String>, String, String), Error> {
    let (table, column) = spec.split_once(':').ok_or_else(|| {
        Error::usage(format!("invalid migrations table {spec:?}"))
            .hint("write table:column or schema.table:column, e.g. app.migrations:version")
    })?;
    let (schema, table) = match table.split_once('.') {
        Some((s, t)) => (Some(s.to_string()), t.to_string()),
        None => (None, table.to_string()),
    };
    if table.is_empty() || column.is_empty() {
        return Err(Error::usage(format!("invalid migrations table {spec:?}")));
    }
    Ok((schema, table, column.to_string()))
}

/// Reads every known (and the custom) migration table present in the connected database.
pub async fn read(client: &Client, custom: Option<&str>) -> Result<Vec<MigrationState>> {
    let mut wanted: Vec<(Option<String>, String, String)> = KNOWN
        .iter()
        .map(|(t, c)| (None, t.to_string(), c.to_string()))
        .collect();
    if let Some(spec) = custom {
        wanted.push(parse_custom(spec)?);
    }
    let mut states = Vec::new();
    for (schema, table, column) in wanted {
        let found = client
            .query(
                "SELECT n.nspname::text, format('%I.%I', n.nspname, c.relname)
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relname = $1 AND c.relkind IN ('r', 'p')
                    AND ($2::text IS NULL OR n.nspname = $2)
                    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                  ORDER BY n.nspname = 'public' DESC, 1",
                &[&table, &schema],
            )
            .await?;
        for row in found {
            let nsp: String = row.get(0);
            let qualified: String = row.get(1);
            let col = format!("\"{}\"", column.replace('"', "\"\""));
            let latest_expr = if table == "alembic_version" {
                format!("string_agg({col}::text, ',' ORDER BY {col}::text)")
            } else {
                format!("max({col})::text")
            };
            let row = client
                .query_one(
                    &format!("SELECT {latest_expr}, count(*) FROM {qualified}"),
                    &[],
                )
                .await
                .map_err(|e| {
                    Error::failed(format!(
                        "could not read migration table {qualified}: {}",
                        pg_error_text(&e)
                    ))
                })?;
            states.push(MigrationState {
                schema: nsp,
                table: table.clone(),
                column: column.clone(),
                latest: row.get(0),
                entries: row.get(1),
            });
        }
    }
    Ok(states)
}

/// Compares two migration versions: numerically when both are numbers, else as text.
/// Alembic revisions are hashes with no order: different means "cannot tell", reported as newer.
fn compare(table: &str, target: &str, backup: &str) -> Ordering {
    if table == "alembic_version" {
        return if target == backup {
            Ordering::Equal
        } else {
            Ordering::Greater
        };
    }
    match (target.parse::<i128>(), backup.parse::<i128>()) {
        (Ok(t), Ok(b)) => t.cmp(&b),
        _ => target.cmp(backup),
    }
}

/// Migration tables where the target is ahead of the backup, as human sentences.
pub fn newer_than_backup(target: &[MigrationState], backup: &[MigrationState]) -> Vec<String> {
    let mut newer = Vec::new();
    for t in target {
        let Some(t_latest) = &t.latest else { continue };
        let b = backup
            .iter()
            .find(|b| b.schema == t.schema && b.table == t.table);
        match b.and_then(|b| b.latest.as_ref()) {
            None => newer.push(format!(
                "{}.{} has migrations ({t_latest}) and the backup has none",
                t.schema, t.table
            )),
            Some(b_latest) => {
                if compare(&t.table, t_latest, b_latest) == Ordering::Greater {
                    newer.push(format!(
                        "{}.{}: target is at {t_latest}, the backup at {b_latest}",
                        t.schema, t.table
                    ));
                }
            }
        }
    }
    newer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(table: &str, latest: &str) -> MigrationState {
        MigrationState {
            schema: "public".into(),
            table: table.into(),
            column: "version".into(),
            latest: Some(latest.into()),
            entries: 1,
        }
    }

    #[test]
    fn numeric_and_text_versions() {
        assert_eq!(
            compare("_sqlx_migrations", "20250610", "20250609"),
            Ordering::Greater
        );
        assert_eq!(compare("_sqlx_migrations", "9", "10"), Ordering::Less);
        assert_eq!(
            compare("knex_migrations", "20250102_b.js", "20250101_a.js"),
            Ordering::Greater
        );
        assert_eq!(compare("alembic_version", "abc", "abc"), Ordering::Equal);
        assert_eq!(compare("alembic_version", "abc", "def"), Ordering::Greater);
    }

    #[test]
    fn newer_target_is_reported() {
        let backup = vec![state("_sqlx_migrations", "20250610")];
        assert!(newer_than_backup(&[state("_sqlx_migrations", "20250610")], &backup).is_empty());
        assert!(newer_than_backup(&[state("_sqlx_migrations", "20250601")], &backup).is_empty());
        let newer = newer_than_backup(&[state("_sqlx_migrations", "20250701")], &backup);
        assert_eq!(newer.len(), 1);
        assert!(newer[0].contains("20250701"));
        assert_eq!(
            newer_than_backup(&[state("schema_migrations", "1")], &backup).len(),
            1
        );
    }

    #[test]
    fn custom_tables() {
        assert_eq!(
            parse_custom("app.migrations:version").unwrap(),
            (Some("app".into()), "migrations".into(), "version".into())
        );
        assert!(parse_custom("nocolumn").is_err());
    }
}
