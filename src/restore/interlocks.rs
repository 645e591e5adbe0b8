//! The runbook's rules, enforced. Each refusal names its interlock, says how to satisfy it,
//! and exits 3 with nothing changed.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use crate::error::Error;
use crate::pg::migrations::{newer_than_backup, MigrationState};
use crate::storage::Storage;

/// The operator typed (or passed) the target database's name.
pub fn confirmation(target: &str, confirm: Option<&str>) -> Result<(), Error> {
    let given = match confirm {
        Some(c) => c.to_string(),
        None if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() => {
            eprint!("This replaces database {target:?}. Type its name to confirm: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).ok();
            line.trim().to_string()
        }
        None => {
            return Err(Error::refused(
                "confirmation",
                format!("restoring over {target:?} was not confirmed"),
            )
            .hint(format!(
                "pass --confirm {target} (the target database's name)"
            )))
        }
    };
    if given == target {
        Ok(())
    } else {
        Err(Error::refused(
            "confirmation",
            format!("{given:?} does not match the target database {target:?}"),
        )
        .hint(format!(
            "confirm with the target's exact name: --confirm {target}"
        )))
    }
}

/// A restore is a documented decision.
pub fn reason(reason: Option<&str>) -> Result<(), Error> {
    match reason.map(str::trim) {
        Some(r) if !r.is_empty() => Ok(()),
        _ => Err(Error::refused("documented decision", "no reason was given")
            .hint("say why with --reason \"...\" (and who approved with --approved-by); both go to the audit record")),
    }
}

/// `*` and `?` wildcards, the whole name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

pub fn protected(target: &str, patterns: &[String], allow: bool) -> Result<(), Error> {
    match patterns.iter().find(|p| glob_match(p, target)) {
        Some(p) if !allow => Err(Error::refused(
            "protected target",
            format!("{target:?} is protected (pattern {p:?})"),
        )
        .hint("add --allow-protected if restoring over this database is really intended")),
        _ => Ok(()),
    }
}

/// The runbook's "application stopped" prerequisite, checked: nobody else is connected.
pub fn sessions(target: &str, others: &[String], terminate: bool) -> Result<(), Error> {
    if others.is_empty() || terminate {
        return Ok(());
    }
    Err(Error::refused(
        "maintenance",
        format!(
            "{} other session(s) are connected to {target:?}: {}",
            others.len(),
            others.join(", ")
        ),
    )
    .hint("stop the application (maintenance mode) first, or pass --terminate-connections to block new connections and end these"))
}

/// Strategy B over a schema that migrated past the backup is how data gets destroyed.
pub fn migrations(
    target: &[MigrationState],
    backup: &[MigrationState],
    allow: bool,
) -> Result<(), Error> {
    let newer = newer_than_backup(target, backup);
    if newer.is_empty() || allow {
        return Ok(());
    }
    Err(Error::refused(
        "schema migrations",
        format!(
            "the target's schema is newer than the backup's ({}); Strategy B (clean) is the \
             not-recommended path and would restore old objects over a newer schema",
            newer.join("; ")
        ),
    )
    .hint("use Strategy A (--strategy fresh), or pass --allow-newer-migrations if you have checked the difference"))
}

/// One restore per target: a session-level advisory lock on the target server.
pub async fn advisory_lock(client: &Client, target: &str) -> Result<()> {
    let got: bool = client
        .query_one(
            "SELECT pg_try_advisory_lock(hashtext('pgsafe-restore'), hashtext($1))",
            &[&target],
        )
        .await?
        .get(0);
    if got {
        Ok(())
    } else {
        Err(Error::refused(
            "one restore at a time",
            format!("another restore of {target:?} is running on this server"),
        )
        .hint("wait for it to finish; `pgsafe audit` shows restores in progress and done")
        .into())
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LockInfo {
    pub target: String,
    pub operator: String,
    pub host: String,
    pub pid: u32,
    pub since: chrono::DateTime<Utc>,
}

pub fn repo_lock_key(target_server: &str, db: &str) -> String {
    format!(
        "_locks/{}.lock.json",
        crate::catalog::id::slug(&format!("{target_server}_{db}"))
    )
}

/// One restore per target across hosts: a lock object in the repository.
pub async fn repo_lock(storage: &dyn Storage, key: &str, info: &LockInfo) -> Result<()> {
    if let Some(held) = storage.get(key).await? {
        let who = serde_json::from_slice::<LockInfo>(&held)
            .map(|l| {
                format!(
                    "{}@{} (pid {}) since {}",
                    l.operator, l.host, l.pid, l.since
                )
            })
            .unwrap_or_else(|_| "an unreadable lock".into());
        return Err(Error::refused(
            "one restore at a time",
            format!("the repository holds a restore lock for this target: {who}"),
        )
        .hint(format!(
            "wait for that restore; if it died, delete {} from the repository",
            storage.location(key)
        ))
        .into());
    }
    storage
        .put(key, Bytes::from(serde_json::to_vec_pretty(info)?))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("prod*", "prod_tickets"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("db?", "db1"));
        assert!(!glob_match("prod*", "staging_prod"));
        assert!(!glob_match("db?", "db12"));
    }

    #[test]
    fn refusals_say_how_to_proceed() {
        let e = reason(Some("  ")).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Refused);
        assert!(e.hint.unwrap().contains("--reason"));
        let e = confirmation("app", Some("other")).unwrap_err();
        assert!(e.message.contains("does not match"));
        assert!(confirmation("app", Some("app")).is_ok());
        assert!(protected("prod", &["prod*".into()], false).is_err());
        assert!(protected("prod", &["prod*".into()], true).is_ok());
        assert!(sessions("app", &["pid 1".into()], false).is_err());
        assert!(sessions("app", &["pid 1".into()], true).is_ok());
    }
}
