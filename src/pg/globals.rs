//! The cluster's globals: roles, role memberships and tablespaces, as `pg_dumpall --globals-only`
//! writes them, and applying them to another server with psql.
//!
//! Applying never touches a role that already exists on the target (its attributes and password
//! stay as they are): the `CREATE ROLE`, `ALTER ROLE` and `COMMENT ON ROLE` lines of existing
//! roles are left out, and so are `CREATE TABLESPACE` lines of existing tablespaces.

use std::collections::HashSet;
use std::process::Stdio;

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;

use super::dump::libpq_command;
use super::{ConnInfo, PgTool};
use crate::error::Error;

/// Runs `pg_dumpall --globals-only` and returns its SQL (a few kilobytes: kept in memory).
pub async fn dump(pg_dumpall: &PgTool, conn: &ConnInfo) -> Result<Vec<u8>> {
    let mut cmd = tokio::process::Command::from(libpq_command(pg_dumpall, conn));
    cmd.arg("--globals-only")
        .arg(format!("--database={}", conn.dbname()))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = cmd
        .output()
        .await
        .with_context(|| format!("could not run {}", pg_dumpall.path.display()))?;
    if !out.status.success() {
        return Err(Error::failed(format!(
            "pg_dumpall --globals-only failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("dumping roles reads pg_authid: --globals needs a superuser connection")
        .into());
    }
    Ok(out.stdout)
}

/// The identifier at the start of `s` (quoted or not), unquoted.
fn ident(s: &str) -> Option<String> {
    if let Some(rest) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    out.push('"');
                } else {
                    return Some(out);
                }
            } else {
                out.push(c);
            }
        }
        None
    } else {
        let end = s.find([' ', ';']).unwrap_or(s.len());
        (end > 0).then(|| s[..end].to_string())
    }
}

/// The globals SQL without the statements about roles and tablespaces that already exist.
/// Returns the SQL and the names it left out.
pub fn filter(
    sql: &str,
    roles: &HashSet<String>,
    tablespaces: &HashSet<String>,
) -> (String, Vec<String>) {
    let mut out = String::with_capacity(sql.len());
    let mut skipped = Vec::new();
    for line in sql.lines() {
        let role_stmt = ["CREATE ROLE ", "ALTER ROLE ", "COMMENT ON ROLE "]
            .iter()
            .find_map(|p| line.strip_prefix(p))
            .and_then(ident);
        let skip = match role_stmt {
            Some(name) if roles.contains(&name) => Some(name),
            _ => line
                .strip_prefix("CREATE TABLESPACE ")
                .and_then(ident)
                .filter(|t| tablespaces.contains(t)),
        };
        match skip {
            Some(name) => {
                if !skipped.contains(&name) {
                    skipped.push(name);
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    (out, skipped)
}

/// Applies globals SQL to the server `maint` is connected to, with psql and ON_ERROR_STOP.
/// Returns the names of existing roles and tablespaces that were left as they are.
pub async fn apply(
    psql: &PgTool,
    conn: &ConnInfo,
    client: &tokio_postgres::Client,
    sql: &[u8],
) -> Result<Vec<String>> {
    let names = |q: &'static str| async move {
        Ok::<_, anyhow::Error>(
            client
                .query(q, &[])
                .await?
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<HashSet<String>>(),
        )
    };
    let roles = names("SELECT rolname::text FROM pg_roles").await?;
    let tablespaces = names("SELECT spcname::text FROM pg_tablespace").await?;
    let text = String::from_utf8_lossy(sql);
    let (filtered, skipped) = filter(&text, &roles, &tablespaces);
    let mut cmd = tokio::process::Command::from(libpq_command(psql, conn));
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not run {}", psql.path.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    stdin.write_all(filtered.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(
            Error::failed(format!("applying the globals failed: {}", stderr.trim()))
                .hint("roles created before the error remain; fix the cause and restore again")
                .into(),
        );
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_roles_and_tablespaces_are_left_alone() {
        let sql = "SET default_transaction_read_only = off;\n\
CREATE ROLE app;\n\
ALTER ROLE app WITH NOSUPERUSER LOGIN PASSWORD 'x';\n\
CREATE ROLE \"Odd \"\"Name\";\n\
ALTER ROLE \"Odd \"\"Name\" WITH LOGIN;\n\
CREATE ROLE postgres;\n\
ALTER ROLE postgres WITH SUPERUSER PASSWORD 'secret';\n\
COMMENT ON ROLE postgres IS 'x';\n\
GRANT app TO \"Odd \"\"Name\" GRANTED BY postgres;\n\
CREATE TABLESPACE fast OWNER postgres LOCATION '/ssd';\n";
        let roles: HashSet<String> = ["postgres".to_string()].into();
        let spaces: HashSet<String> = ["fast".to_string()].into();
        let (out, skipped) = filter(sql, &roles, &spaces);
        assert!(out.contains("CREATE ROLE app;"));
        assert!(out.contains("CREATE ROLE \"Odd \"\"Name\";"));
        assert!(out.contains("GRANT app TO"));
        assert!(!out.contains("postgres WITH"));
        assert!(!out.contains("COMMENT ON ROLE"));
        assert!(!out.contains("TABLESPACE"));
        assert_eq!(skipped, vec!["postgres", "fast"]);
        assert_eq!(ident("\"a\"\"b\" x"), Some("a\"b".into()));
    }
}
