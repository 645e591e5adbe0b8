//! Verification records: each `pgsafe verify` result, kept in the repository beside the backup
//! (`<database>/<backup id>.verify.json`, newest last), so `list` and `show` can say when a
//! backup was last proven restorable, and prune can keep the newest verified one.

use anyhow::Result;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::storage::Storage;

pub const SUFFIX: &str = ".verify.json";
/// Records kept per backup; older ones are dropped.
const KEEP: usize = 50;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// SHA-256 of the stored object and the archive, and pg_restore reads the table of contents.
    Archive,
    /// Also restored into a scratch database on a staging server and checked.
    Restore,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verification {
    pub at: DateTime<Utc>,
    pub level: Level,
    pub ok: bool,
    /// `verified`, `corrupt`, `integrity failed`, `failed` or `interrupted`.
    pub result: String,
    pub host: String,
    pub pgsafe_version: String,
    /// The staging server (password redacted) and the scratch database.
    pub restore_to: Option<String>,
    pub scratch_database: Option<String>,
    /// Each step with its duration and outcome.
    pub steps: Vec<Step>,
    /// The integrity checks that failed (all of them pass when `ok`).
    #[serde(default)]
    pub failed_checks: Vec<String>,
    pub checks_run: usize,
    pub error: Option<String>,
    pub duration_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub step: String,
    pub ok: bool,
    pub seconds: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    pub backup_id: String,
    pub verifications: Vec<Verification>,
}

impl History {
    /// The newest successful verification.
    pub fn last_ok(&self) -> Option<&Verification> {
        self.verifications.iter().rev().find(|v| v.ok)
    }
}

/// `gestor_tickets/2026-...Z_gestor_tickets.verify.json`
pub fn key(database: &str, backup_id: &str) -> String {
    format!("{}/{backup_id}{SUFFIX}", super::id::slug(database))
}

pub fn id_of_key(key: &str) -> Option<&str> {
    key.rsplit('/').next()?.strip_suffix(SUFFIX)
}

pub async fn load(storage: &dyn Storage, key: &str) -> Result<Option<History>> {
    let Some(data) = storage.get(key).await? else {
        return Ok(None);
    };
    // A damaged record says nothing about the backup: treat it as no record.
    Ok(serde_json::from_slice(&data).ok())
}

/// Appends one result to the backup's history.
pub async fn record(
    storage: &dyn Storage,
    database: &str,
    backup_id: &str,
    v: Verification,
) -> Result<()> {
    let key = key(database, backup_id);
    let mut history = load(storage, &key).await?.unwrap_or_else(|| History {
        backup_id: backup_id.to_string(),
        verifications: Vec::new(),
    });
    history.verifications.push(v);
    let excess = history.verifications.len().saturating_sub(KEEP);
    history.verifications.drain(..excess);
    let mut data = serde_json::to_vec_pretty(&history)?;
    data.push(b'\n');
    storage.put(&key, Bytes::from(data)).await
}
