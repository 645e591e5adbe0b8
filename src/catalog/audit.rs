//! The audit record: one JSON document per restore or refusal (time, operator, host, reason,
//! approver, backup, target, strategy, every step with its duration and result, final result),
//! appended to a local log and stored in the repository under `_audit/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::storage::Storage;

pub const PREFIX: &str = "_audit/";
const SUFFIX: &str = ".audit.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub step: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// `ok`, `failed`, `refused` or `skipped`.
    pub result: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub time: DateTime<Utc>,
    pub action: String,
    pub operator: String,
    pub host: String,
    pub reason: Option<String>,
    pub approved_by: Option<String>,
    pub backup_id: Option<String>,
    pub backup_sha256: Option<String>,
    /// Target URL, password redacted.
    pub target: String,
    pub database: String,
    pub strategy: String,
    pub dry_run: bool,
    pub steps: Vec<Step>,
    /// `ok`, `refused`, `failed`, `integrity-failed`, `corrupt`, `interrupted` or `dry-run`.
    pub result: String,
    pub exit_code: i32,
    pub error: Option<String>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub fn operator() -> String {
    std::env::var("PGSAFE_OPERATOR")
        .or_else(|_| std::env::var("SUDO_USER"))
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| "unknown".into())
        })
}

pub fn host() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}

/// `$XDG_STATE_HOME/pgsafe/audit.log`, else `~/.local/state/pgsafe/audit.log`.
pub fn default_log() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("pgsafe")
        .join("audit.log")
}

impl Record {
    /// Times a step and records its outcome.
    pub fn step(
        &mut self,
        name: &str,
        started: (DateTime<Utc>, Instant),
        result: &str,
        detail: impl Into<String>,
    ) {
        self.steps.push(Step {
            step: name.to_string(),
            started_at: started.0,
            duration_ms: started.1.elapsed().as_millis() as u64,
            result: result.to_string(),
            detail: detail.into(),
        });
    }

    fn key(&self) -> String {
        format!(
            "{PREFIX}{}_{}_{}{SUFFIX}",
            self.time.format("%Y-%m-%dT%H%M%S%.3fZ"),
            super::id::slug(&self.database),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
    }

    /// Appends the record to the local log and stores it in the repository. Both are tried;
    /// the first failure is returned.
    pub async fn save(&self, log: &Path, storage: Option<&dyn Storage>) -> Result<()> {
        let line = serde_json::to_string(self)?;
        let local = (|| -> Result<()> {
            if let Some(dir) = log.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)?;
            writeln!(f, "{line}")?;
            f.sync_all()?;
            Ok(())
        })()
        .with_context(|| format!("could not append to the audit log {}", log.display()));
        let remote = match storage {
            Some(s) => s
                .put(&self.key(), Bytes::from(line.clone() + "\n"))
                .await
                .context("could not store the audit record in the repository"),
            None => Ok(()),
        };
        local.and(remote)
    }
}

/// Every audit record in the repository, oldest first.
pub async fn list(storage: &dyn Storage) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for o in storage.list(PREFIX).await? {
        if !o.key.ends_with(SUFFIX) {
            continue;
        }
        if let Some(data) = storage.get(&o.key).await? {
            match serde_json::from_slice::<Record>(&data) {
                Ok(r) => records.push(r),
                Err(e) => tracing::warn!("skipping unreadable audit record {}: {e}", o.key),
            }
        }
    }
    records.sort_by_key(|r| r.time);
    Ok(records)
}
