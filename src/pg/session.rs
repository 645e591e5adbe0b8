//! pgsafe's own connection to a server: facts about it, and the snapshot a dump is taken in.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls};

use super::ConnInfo;
use crate::error::Error;

/// Opens a connection; the connection task runs in the background until the client is dropped.
pub async fn connect(info: &ConnInfo) -> Result<Client> {
    let cfg = info.pg_config()?;
    let connected = match info.tls()? {
        None => cfg.connect(NoTls).await.map(|(client, conn)| {
            tokio::spawn(drive(conn));
            client
        }),
        Some(tls) => cfg.connect(tls).await.map(|(client, conn)| {
            tokio::spawn(drive(conn));
            client
        }),
    };
    connected.map_err(|e| {
        Error::failed(format!(
            "could not connect to {}: {}",
            info.redacted(),
            pg_error_text(&e)
        ))
        .hint("check the URL or PG* variables, that the server runs, the password (PGPASSWORD or ~/.pgpass) and sslmode")
        .into()
    })
}

/// Asks the server to cancel whatever `client` is running (best effort).
pub async fn cancel_running(client: &Client, info: &ConnInfo) {
    let token = client.cancel_token();
    let _ = match info.tls() {
        Ok(Some(tls)) => token.cancel_query(tls).await,
        _ => token.cancel_query(NoTls).await,
    };
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(conn: F) {
    if let Err(e) = conn.await {
        tracing::debug!("connection closed: {e}");
    }
}

/// The server's message for a database error, else the error itself (never includes a password).
pub fn pg_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Extension {
    pub name: String,
    pub version: String,
    pub schema: String,
}

/// What a restore needs to know about the database a backup came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseInfo {
    pub server_version: String,
    pub server_version_num: i32,
    pub encoding: String,
    pub lc_collate: String,
    pub lc_ctype: String,
    pub locale_provider: String,
    pub icu_locale: Option<String>,
    pub extensions: Vec<Extension>,
}

impl DatabaseInfo {
    pub fn major(&self) -> u32 {
        (self.server_version_num / 10000) as u32
    }
}

pub async fn database_info(client: &Client) -> Result<DatabaseInfo> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'),
                    current_setting('server_version_num')::int,
                    pg_encoding_to_char(d.encoding)::text,
                    d.datcollate::text, d.datctype::text,
                    CASE d.datlocprovider WHEN 'i' THEN 'icu' ELSE 'libc' END,
                    d.daticulocale::text
               FROM pg_database d WHERE d.datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| {
            Error::failed(format!(
                "could not read database facts: {}",
                pg_error_text(&e)
            ))
        })?;
    let extensions = client
        .query(
            "SELECT e.extname::text, e.extversion, n.nspname::text
               FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
              ORDER BY 1",
            &[],
        )
        .await
        .context("could not list extensions")?
        .iter()
        .map(|r| Extension {
            name: r.get(0),
            version: r.get(1),
            schema: r.get(2),
        })
        .collect();
    Ok(DatabaseInfo {
        server_version: row.get(0),
        server_version_num: row.get(1),
        encoding: row.get(2),
        lc_collate: row.get(3),
        lc_ctype: row.get(4),
        locale_provider: row.get(5),
        icu_locale: row.get(6),
        extensions,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableRows {
    pub schema: String,
    pub name: String,
    pub rows: i64,
}

/// Starts a REPEATABLE READ transaction and exports its snapshot, so pg_dump (`--snapshot`) and
/// the row counts see exactly the same data. Keep the client open until pg_dump is done.
pub async fn export_snapshot(client: &Client) -> Result<String> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .context("could not start the snapshot transaction")?;
    let row = client
        .query_one("SELECT pg_export_snapshot()", &[])
        .await
        .map_err(|e| {
            Error::failed(format!(
                "could not export a snapshot: {}",
                pg_error_text(&e)
            ))
            .hint("pgsafe needs pg_export_snapshot(); a hot standby cannot export snapshots, back up the primary")
        })?;
    Ok(row.get(0))
}

/// Row count of every table whose data pg_dump dumps: ordinary and partition tables outside the
/// system schemas, not owned by an extension. Runs in the caller's transaction.
pub async fn table_row_counts(client: &Client) -> Result<Vec<TableRows>> {
    let tables = client
        .query(
            "SELECT n.nspname::text, c.relname::text, format('%I.%I', n.nspname, c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind = 'r'
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.deptype = 'e')
              ORDER BY 1, 2",
            &[],
        )
        .await
        .context("could not list tables")?;
    let mut counts = Vec::with_capacity(tables.len());
    for t in tables {
        let qualified: String = t.get(2);
        let row = client
            .query_one(&format!("SELECT count(*) FROM {qualified}"), &[])
            .await
            .map_err(|e| {
                Error::failed(format!(
                    "could not count the rows of {qualified}: {}",
                    pg_error_text(&e)
                ))
            })?;
        counts.push(TableRows {
            schema: t.get(0),
            name: t.get(1),
            rows: row.get(0),
        });
    }
    Ok(counts)
}
