//! What the repository holds: backups (objects with a manifest) and what failed runs left.
//! Only manifests make backups; nothing is ever inferred from an object name or date alone.

pub mod audit;
pub mod id;
pub mod manifest;
pub mod retention;
pub mod verification;

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use manifest::Manifest;

use crate::error::Error;
use crate::storage::Storage;

/// The tag of the safety backup a restore takes of its target first.
pub const PRE_RESTORE_TAG: &str = "pre-restore";

/// Something in the repository that is not a backup.
#[derive(Debug, Clone, Serialize)]
pub struct Leftover {
    pub key: String,
    /// `multipart upload`, `object without manifest` or `invalid manifest`.
    pub kind: String,
    pub detail: String,
    pub since: Option<DateTime<Utc>>,
    /// For unfinished multipart uploads: what aborting it needs.
    #[serde(skip)]
    pub upload: Option<crate::storage::IncompleteUpload>,
}

#[derive(Debug, Default)]
pub struct Listing {
    /// Complete backups, oldest first.
    pub backups: Vec<Manifest>,
    pub leftovers: Vec<Leftover>,
    /// The verification history of each backup that has one, by backup ID.
    pub verifications: HashMap<String, verification::History>,
}

impl Listing {
    /// The newest successful verification of a backup.
    pub fn verified(&self, id: &str) -> Option<&verification::Verification> {
        self.verifications.get(id).and_then(|h| h.last_ok())
    }

    /// The newest verification of a backup, successful or not.
    pub fn last_check(&self, id: &str) -> Option<&verification::Verification> {
        self.verifications
            .get(id)
            .and_then(|h| h.verifications.last())
    }
}

/// Reads every manifest (of one database, when given) and finds what failed runs left behind;
/// `uploads` also asks the storage for unfinished multipart uploads.
pub async fn list(storage: &dyn Storage, database: Option<&str>, uploads: bool) -> Result<Listing> {
    let prefix = database
        .map(|d| format!("{}/", id::slug(d)))
        .unwrap_or_default();
    let objects = storage.list(&prefix).await?;
    let mut listing = Listing::default();
    let mut ids = HashSet::new();
    for o in objects
        .iter()
        .filter(|o| id::id_of_manifest_key(&o.key).is_some())
    {
        let Some(data) = storage.get(&o.key).await? else {
            continue;
        };
        match Manifest::from_json(&o.key, &data) {
            Ok(m) => {
                ids.insert(m.backup_id.clone());
                if database.is_none_or(|d| d == m.database) {
                    listing.backups.push(m);
                }
            }
            Err(e) => listing.leftovers.push(Leftover {
                key: o.key.clone(),
                kind: "invalid manifest".into(),
                detail: e.message,
                since: o.modified,
                upload: None,
            }),
        }
    }
    for o in &objects {
        let oid = id::id_of_object_key(&o.key).or_else(|| id::id_of_companion_key(&o.key));
        if let Some(oid) = oid {
            if !ids.contains(oid) {
                listing.leftovers.push(Leftover {
                    key: o.key.clone(),
                    kind: "object without manifest".into(),
                    detail: format!("{} bytes", o.size),
                    since: o.modified,
                    upload: None,
                });
            }
        }
        if let Some(vid) = verification::id_of_key(&o.key) {
            let wanted = listing.backups.iter().any(|m| m.backup_id == vid);
            if wanted {
                if let Some(h) = verification::load(storage, &o.key).await? {
                    listing.verifications.insert(vid.to_string(), h);
                }
            }
        }
    }
    let unfinished = if uploads {
        storage.incomplete_uploads(&prefix).await?
    } else {
        Vec::new()
    };
    for u in unfinished {
        listing.leftovers.push(Leftover {
            key: u.key.clone(),
            kind: "multipart upload".into(),
            detail: format!("upload id {}", u.upload_id),
            since: u.started,
            upload: Some(u),
        });
    }
    listing
        .backups
        .sort_by(|a, b| (a.started_at, &a.backup_id).cmp(&(b.started_at, &b.backup_id)));
    Ok(listing)
}

/// Finds a backup by ID, or the newest complete one of `database` for `latest`.
pub async fn resolve(storage: &dyn Storage, id: &str, database: Option<&str>) -> Result<Manifest> {
    if id == "latest" {
        let Some(db) = database else {
            return Err(Error::usage("`latest` needs --database NAME")
                .hint("name the database whose newest backup you mean, or give a backup ID")
                .into());
        };
        let listing = list(storage, Some(db), false).await?;
        // Safety backups taken before a restore are not what `latest` means.
        return listing
            .backups
            .into_iter()
            .rfind(|m| m.tag.as_deref() != Some(PRE_RESTORE_TAG))
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "no complete backup of database {db:?} in {}",
                    storage.describe()
                ))
                .hint("`pgsafe list` shows the backups the repository holds")
                .into()
            });
    }
    let listing = list(storage, database, false).await?;
    if let Some(m) = listing.backups.into_iter().find(|m| m.backup_id == id) {
        return Ok(m);
    }
    if let Some(bad) = listing
        .leftovers
        .iter()
        .find(|l| l.kind == "invalid manifest" && id::id_of_manifest_key(&l.key) == Some(id))
    {
        return Err(Error::corrupt(bad.detail.clone()).into());
    }
    let partial = listing
        .leftovers
        .iter()
        .any(|l| id::id_of_object_key(&l.key) == Some(id));
    let why = if partial {
        "its upload never completed (no manifest), so it is not a backup"
    } else {
        "no manifest has that ID"
    };
    Err(Error::corrupt(format!(
        "backup {id} not found in {}: {why}",
        storage.describe()
    ))
    .hint("`pgsafe list` shows the complete backups")
    .into())
}
