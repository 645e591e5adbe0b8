//! The destructive part of a restore, one operation each: databases created, renamed, dropped,
//! sessions blocked and terminated, and pg_restore runs. The orchestration decides the order.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::catalog::Manifest;
use crate::error::Error;
use crate::pg::dump::libpq_command;
use crate::pg::session::pg_error_text;
use crate::pg::{quote_ident, quote_literal, ConnInfo, PgTool};
use crate::process::{Child, GRACE};

/// How pg_restore is asked to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreFlags {
    pub jobs: u32,
    pub with_owner: bool,
    pub with_acl: bool,
    /// Strategy B: drop each object before recreating it, all in one transaction.
    pub clean: bool,
}

/// `dbname='...'` for pg_restore's -d: a conninfo string, so a database name is never taken
/// for a connection string, and nothing secret is on the command line.
pub fn dbname_conninfo(db: &str) -> String {
    format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"))
}

pub fn pg_restore_args(db: &str, archive: &Path, flags: &RestoreFlags) -> Vec<String> {
    let mut args = vec!["--exit-on-error".to_string()];
    if !flags.with_owner {
        args.push("--no-owner".into());
    }
    if !flags.with_acl {
        args.push("--no-acl".into());
    }
    if flags.clean {
        // A failure rolls everything back: the target stays as it was.
        args.extend(["--clean", "--if-exists", "--single-transaction"].map(String::from));
    } else if flags.jobs > 1 {
        args.push(format!("--jobs={}", flags.jobs));
    }
    args.push(format!("--dbname={}", dbname_conninfo(db)));
    args.push(archive.display().to_string());
    args
}

/// Runs pg_restore; a non-zero exit is a failed restore quoting its stderr. Warnings of a
/// successful run are returned, never dropped. A signal stops pg_restore's process group.
pub async fn pg_restore(
    tool: &PgTool,
    server: &ConnInfo,
    db: &str,
    archive: &Path,
    flags: &RestoreFlags,
    cancel: &CancellationToken,
) -> Result<String> {
    let mut cmd: Command = libpq_command(tool, server);
    cmd.args(pg_restore_args(db, archive, flags))
        .stdout(Stdio::null());
    let child = Child::spawn("pg_restore", cmd)?;
    let killer = child.killer();
    let mut wait = tokio::spawn(child.wait());
    tokio::select! {
        done = &mut wait => {
            let finished = done.context("pg_restore waiter failed")??;
            finished.check("pg_restore")?;
            Ok(finished.stderr)
        }
        _ = cancel.cancelled() => {
            killer.signal(Signal::SIGTERM);
            if tokio::time::timeout(GRACE, &mut wait).await.is_err() {
                killer.signal(Signal::SIGKILL);
                let _ = wait.await;
            }
            Err(Error::interrupted().into())
        }
    }
}

pub async fn database_exists(client: &Client, db: &str) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&db],
        )
        .await?
        .get(0))
}

/// Other client sessions on `db` that are still there after up to two seconds: connections
/// that are closing (pgsafe's own, just dropped) are not counted.
pub async fn lasting_sessions(client: &Client, db: &str) -> Result<Vec<String>> {
    let mut others = other_sessions(client, db).await?;
    for _ in 0..20 {
        if others.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        others = other_sessions(client, db).await?;
    }
    Ok(others)
}

/// Other client sessions connected to `db`, described for humans. Autovacuum workers are not
/// the application and do not count (they are ended with the rest when sessions are terminated).
pub async fn other_sessions(client: &Client, db: &str) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT pid, coalesce(usename::text, '?'), coalesce(application_name, ''),
                    coalesce(host(client_addr), 'local')
               FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            &[&db],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (pid, user, app, addr): (i32, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            format!(
                "pid {pid} ({user}@{addr}{})",
                if app.is_empty() {
                    String::new()
                } else {
                    format!(", {app}")
                }
            )
        })
        .collect())
}

/// Stops new non-superuser connections (CONNECTION LIMIT 0); returns the previous limit.
pub async fn block_connections(client: &Client, db: &str) -> Result<i32> {
    let old: i32 = client
        .query_one(
            "SELECT datconnlimit FROM pg_database WHERE datname = $1",
            &[&db],
        )
        .await?
        .get(0);
    set_connection_limit(client, db, 0).await?;
    Ok(old)
}

pub async fn set_connection_limit(client: &Client, db: &str, limit: i32) -> Result<()> {
    client
        .batch_execute(&format!(
            "ALTER DATABASE {} CONNECTION LIMIT {limit}",
            quote_ident(db)
        ))
        .await
        .map_err(|e| {
            Error::failed(format!(
                "could not set the connection limit of {db}: {}",
                pg_error_text(&e)
            ))
        })?;
    Ok(())
}

/// Terminates every other session on `db`; returns how many were terminated.
pub async fn terminate_sessions(client: &Client, db: &str) -> Result<u64> {
    let rows = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .map_err(|e| {
            Error::failed(format!(
                "could not terminate the sessions on {db}: {}",
                pg_error_text(&e)
            ))
        })?;
    // Terminated backends take a moment to go away; renames and drops need them all gone.
    for _ in 0..100 {
        let left: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&db],
            )
            .await?
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(rows.len() as u64)
}

pub async fn database_owner(client: &Client, db: &str) -> Result<Option<String>> {
    Ok(client
        .query_opt(
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
            &[&db],
        )
        .await?
        .map(|r| r.get(0)))
}

/// Creates an empty database with the backup's encoding and locale.
pub async fn create_database(
    client: &Client,
    db: &str,
    m: &Manifest,
    owner: Option<&str>,
) -> Result<()> {
    let mut sql = format!(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        quote_ident(db),
        quote_literal(&m.server.encoding),
        quote_literal(&m.server.lc_collate),
        quote_literal(&m.server.lc_ctype)
    );
    if m.server.locale_provider == "icu" {
        if let Some(icu) = &m.server.icu_locale {
            sql.push_str(&format!(
                " LOCALE_PROVIDER icu ICU_LOCALE {}",
                quote_literal(icu)
            ));
        }
    }
    if let Some(owner) = owner {
        sql.push_str(&format!(" OWNER {}", quote_ident(owner)));
    }
    client.batch_execute(&sql).await.map_err(|e| {
        Error::failed(format!(
            "could not create database {db}: {}",
            pg_error_text(&e)
        ))
        .hint("the target server needs the backup's encoding and locale (see `pgsafe show`)")
    })?;
    Ok(())
}

pub async fn drop_database(client: &Client, db: &str) -> Result<()> {
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(db)
        ))
        .await
        .map_err(|e| {
            Error::failed(format!(
                "could not drop database {db}: {}",
                pg_error_text(&e)
            ))
        })?;
    Ok(())
}

/// GUCs whose stored value is already a SQL list (`a, "B"`) and must not be quoted again.
const LIST_SETTINGS: &[&str] = &[
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
    "default_text_search_config",
];

/// The database-level state pg_dump does not carry (it lives outside the database):
/// `ALTER DATABASE ... SET` and `ALTER ROLE ... IN DATABASE ... SET` settings, and the grants on
/// the database itself, as statements that give it to a database named `{db}`.
#[derive(Debug, Default)]
pub struct DatabaseState {
    statements: Vec<String>,
}

const DB_PLACEHOLDER: &str = "\u{0}db\u{0}";

pub async fn database_state(client: &Client, db: &str) -> Result<DatabaseState> {
    let settings = client
        .query(
            "SELECT coalesce(r.rolname::text, ''), unnest(s.setconfig)
               FROM pg_db_role_setting s
               JOIN pg_database d ON d.oid = s.setdatabase
               LEFT JOIN pg_roles r ON r.oid = s.setrole
              WHERE d.datname = $1",
            &[&db],
        )
        .await?;
    let mut statements = Vec::new();
    for row in &settings {
        let (role, entry): (String, String) = (row.get(0), row.get(1));
        let Some((name, value)) = entry.split_once('=') else {
            continue;
        };
        let value = if LIST_SETTINGS.contains(&name) {
            value.to_string()
        } else {
            quote_literal(value)
        };
        let target = if role.is_empty() {
            format!("DATABASE {DB_PLACEHOLDER}")
        } else {
            format!("ROLE {} IN DATABASE {DB_PLACEHOLDER}", quote_ident(&role))
        };
        statements.push(format!(
            "ALTER {target} SET {} = {value}",
            quote_ident(name)
        ));
    }
    let grants = client
        .query(
            "SELECT coalesce(r.rolname::text, ''), a.privilege_type, a.is_grantable
               FROM pg_database d, aclexplode(d.datacl) a
               LEFT JOIN pg_roles r ON r.oid = a.grantee
              WHERE d.datname = $1 AND d.datacl IS NOT NULL",
            &[&db],
        )
        .await?;
    if !grants.is_empty() {
        statements.push(format!(
            "REVOKE ALL ON DATABASE {DB_PLACEHOLDER} FROM PUBLIC"
        ));
        for g in &grants {
            let (role, privilege, grantable): (String, String, bool) =
                (g.get(0), g.get(1), g.get(2));
            let grantee = if role.is_empty() {
                "PUBLIC".to_string()
            } else {
                quote_ident(&role)
            };
            let option = if grantable { " WITH GRANT OPTION" } else { "" };
            statements.push(format!(
                "GRANT {privilege} ON DATABASE {DB_PLACEHOLDER} TO {grantee}{option}"
            ));
        }
    }
    Ok(DatabaseState { statements })
}

/// Applies a [`DatabaseState`] to `db`.
pub async fn apply_database_state(client: &Client, db: &str, state: &DatabaseState) -> Result<()> {
    for statement in &state.statements {
        let statement = statement.replace(DB_PLACEHOLDER, &quote_ident(db));
        client.batch_execute(&statement).await.map_err(|e| {
            Error::failed(format!(
                "could not give {db} the settings and grants of the database it replaces ({statement}): {}",
                pg_error_text(&e)
            ))
        })?;
    }
    Ok(())
}

/// Renames `live` to `aside` and `replacement` to `live`, in one transaction.
pub async fn swap(client: &Client, live: &str, aside: &str, replacement: &str) -> Result<()> {
    let sql = format!(
        "BEGIN; ALTER DATABASE {live_q} RENAME TO {aside_q}; ALTER DATABASE {repl_q} RENAME TO {live_q}; COMMIT;",
        live_q = quote_ident(live),
        aside_q = quote_ident(aside),
        repl_q = quote_ident(replacement)
    );
    if let Err(e) = client.batch_execute(&sql).await {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(Error::failed(format!(
            "could not swap {replacement} into {live}: {}",
            pg_error_text(&e)
        ))
        .into());
    }
    Ok(())
}

/// `<db><suffix>`, the database part shortened so the name fits PostgreSQL's 63 bytes.
pub fn derived_name(db: &str, suffix: &str) -> String {
    let room = 63usize.saturating_sub(suffix.len());
    let mut end = db.len().min(room);
    while !db.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{suffix}", &db[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_arguments() {
        let a = pg_restore_args(
            "app",
            Path::new("/w/x.dump"),
            &RestoreFlags {
                jobs: 4,
                ..Default::default()
            },
        );
        assert_eq!(
            a,
            [
                "--exit-on-error",
                "--no-owner",
                "--no-acl",
                "--jobs=4",
                "--dbname=dbname='app'",
                "/w/x.dump"
            ]
        );
        let b = pg_restore_args(
            "it's",
            Path::new("x"),
            &RestoreFlags {
                jobs: 4,
                clean: true,
                with_owner: true,
                with_acl: true,
            },
        );
        assert_eq!(
            b,
            [
                "--exit-on-error",
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--dbname=dbname='it\\'s'",
                "x"
            ]
        );
    }

    #[test]
    fn derived_names_fit() {
        assert_eq!(
            derived_name("app", "__pgsafe_20260102030405"),
            "app__pgsafe_20260102030405"
        );
        let long = "ñ".repeat(40);
        let n = derived_name(&long, "__pgsafe_pre_20260102030405");
        assert!(n.len() <= 63 && n.ends_with("__pgsafe_pre_20260102030405"));
    }
}
