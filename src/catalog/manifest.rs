//! The manifest: the JSON document written last, whose presence makes an upload a backup.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::pg::migrations::MigrationState;
use crate::pg::session::{Extension, TableRows};
use crate::pipeline::{Checksum, Compression};

/// Bumped on incompatible changes; readers refuse newer versions.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub schema_version: u32,
    pub backup_id: String,
    /// The database's real name (keys carry a safe form of it).
    pub database: String,
    pub tag: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub pgsafe_version: String,
    pub pg_dump_version: String,
    pub server: ServerFacts,
    pub dump: DumpFacts,
    /// The stored object: key, compression, size and SHA-256 as stored.
    pub object: StoredObject,
    /// The archive as pg_dump wrote it (what `pg_restore` reads).
    pub archive: Checksum,
    pub extensions: Vec<Extension>,
    /// Row counts taken in the dump's own snapshot.
    pub tables: Vec<TableRows>,
    /// The newest entry of each schema migration table, in the same snapshot.
    #[serde(default)]
    pub migrations: Vec<MigrationState>,
    /// Where the backup came from, password redacted.
    pub source: String,
    /// The cluster's roles and tablespaces (`pg_dumpall --globals-only`), when taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub globals: Option<StoredGlobals>,
    /// What the anomaly guard noticed against the previous backup (nothing is deleted for it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredGlobals {
    pub object: StoredObject,
    /// The SQL as pg_dumpall wrote it.
    pub sql: Checksum,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerFacts {
    pub version: String,
    pub version_num: i32,
    pub encoding: String,
    pub lc_collate: String,
    pub lc_ctype: String,
    pub locale_provider: String,
    pub icu_locale: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DumpFacts {
    pub format: String,
    pub snapshot: Option<String>,
    pub no_owner: bool,
    pub no_acl: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredObject {
    pub key: String,
    pub compression: Compression,
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    /// Every key this backup owns in the repository, in the order prune deletes them: the
    /// manifest first, so an interrupted prune leaves at worst objects without a manifest
    /// (which are not backups, and which the next prune cleans up), never a manifest that
    /// names a missing archive.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = vec![
            super::id::keys(
                &self.database,
                &self.backup_id,
                self.object.compression.algorithm,
            )
            .manifest,
            self.object.key.clone(),
        ];
        if let Some(g) = &self.globals {
            keys.push(g.object.key.clone());
        }
        keys.push(super::verification::key(&self.database, &self.backup_id));
        keys
    }

    pub fn total_rows(&self) -> i64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }

    /// Parses and checks a manifest; anything wrong is a corrupt backup.
    pub fn from_json(key: &str, data: &[u8]) -> Result<Manifest, Error> {
        #[derive(Deserialize)]
        struct Version {
            schema_version: u32,
        }
        let version: Version = serde_json::from_slice(data)
            .map_err(|e| Error::corrupt(format!("manifest {key} is not valid: {e}")))?;
        if version.schema_version > SCHEMA_VERSION {
            return Err(Error::corrupt(format!(
                "manifest {key} has schema version {}, newer than this pgsafe reads ({SCHEMA_VERSION})",
                version.schema_version
            ))
            .hint("upgrade pgsafe to read this backup"));
        }
        let m: Manifest = serde_json::from_slice(data)
            .map_err(|e| Error::corrupt(format!("manifest {key} is not valid: {e}")))?;
        let hex64 = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex64(&m.object.sha256) || !hex64(&m.archive.sha256) {
            return Err(Error::corrupt(format!(
                "manifest {key} has a malformed SHA-256"
            )));
        }
        if super::id::id_of_manifest_key(key) != Some(m.backup_id.as_str()) {
            return Err(Error::corrupt(format!(
                "manifest {key} names another backup ({})",
                m.backup_id
            )));
        }
        Ok(m)
    }
}
