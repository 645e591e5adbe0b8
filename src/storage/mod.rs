//! Where backups are kept: one trait, a local directory and S3-compatible object storage.
//!
//! Keys are relative to the repository (`<database>/<backup id>.dump.zst`); both backends use the
//! same layout, and neither ever exposes a half-written object under its final key.

pub mod local;
pub mod multipart;
pub mod s3;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
}

/// An upload that was started and never completed or aborted (a crashed or killed run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncompleteUpload {
    pub key: String,
    pub upload_id: String,
    pub started: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait Storage: Send + Sync {
    /// Human description, e.g. `s3://bucket/prefix (endpoint http://127.0.0.1:9000)`.
    fn describe(&self) -> String;
    /// Where one object lives, for humans: `s3://bucket/prefix/key` or a file path.
    fn location(&self, key: &str) -> String;
    /// Fails when the repository cannot be used (bucket missing, unreachable, not writable).
    async fn check(&self) -> Result<()>;
    /// Writes a small object atomically.
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;
    /// Reads a whole small object; `Ok(None)` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Bytes>>;
    /// Streams an object into `sink` in chunks; `Ok(false)` when it does not exist.
    async fn download(&self, key: &str, sink: tokio::sync::mpsc::Sender<Bytes>) -> Result<bool>;
    /// Objects under a key prefix, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// Starts a multipart upload; nothing appears under `key` until [`Upload::complete`].
    async fn begin_upload(&self, key: &str) -> Result<Box<dyn Upload>>;
    /// Uploads under `prefix` that were begun and never completed or aborted.
    async fn incomplete_uploads(&self, prefix: &str) -> Result<Vec<IncompleteUpload>>;
    /// Discards an unfinished upload that [`Storage::incomplete_uploads`] found.
    async fn abort_incomplete(&self, upload: &IncompleteUpload) -> Result<()>;
}

#[async_trait]
pub trait Upload: Send + Sync {
    /// Stores part `number` (1-based), which starts at byte `offset` of the object.
    /// Parts may be sent concurrently and complete in any order.
    async fn put_part(&self, number: u32, offset: u64, data: Bytes) -> Result<()>;
    /// Makes the object visible under its key.
    async fn complete(&self) -> Result<()>;
    /// Discards everything uploaded so far; also after a failed `complete`.
    async fn abort(&self) -> Result<()>;
}

/// S3 settings that do not belong in the repository URL.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub force_path_style: bool,
}

/// A parsed `--repo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoUrl {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl RepoUrl {
    pub fn parse(repo: &str) -> Result<RepoUrl, Error> {
        let hint = "use s3://bucket/prefix, file:///absolute/path or a directory path";
        if let Some(rest) = repo.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::usage(format!("repository {repo:?} names no bucket")).hint(hint));
            }
            let prefix = prefix.trim_matches('/');
            let prefix = if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            };
            Ok(RepoUrl::S3 {
                bucket: bucket.to_string(),
                prefix,
            })
        } else if let Some(path) = repo.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(Error::usage(format!(
                    "repository {repo:?} is not an absolute file:// URL"
                ))
                .hint(hint));
            }
            Ok(RepoUrl::Local(PathBuf::from(path)))
        } else if repo.contains("://") {
            Err(Error::usage(format!("unsupported repository {repo:?}")).hint(hint))
        } else if repo.is_empty() {
            Err(Error::usage("empty repository").hint(hint))
        } else {
            Ok(RepoUrl::Local(PathBuf::from(repo)))
        }
    }

    /// `$XDG_DATA_HOME/pgsafe/repo`, else `~/.local/share/pgsafe/repo`.
    pub fn default_local() -> RepoUrl {
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        RepoUrl::Local(base.join("pgsafe").join("repo"))
    }
}

/// Opens the repository. S3 clients are built from the standard AWS configuration chain.
pub async fn open(repo: &RepoUrl, s3: &S3Options) -> Result<Arc<dyn Storage>> {
    Ok(match repo {
        RepoUrl::Local(path) => Arc::new(local::LocalStorage::open(path)?),
        RepoUrl::S3 { bucket, prefix } => Arc::new(s3::S3Storage::open(bucket, prefix, s3).await?),
    })
}

/// Rejects keys that could escape the repository.
pub(crate) fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty()
        || key.starts_with('/')
        || key.split('/').any(|c| c == ".." || c == ".")
        || key.contains('\0')
    {
        return Err(Error::usage(format!("invalid object key {key:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_urls() {
        assert_eq!(
            RepoUrl::parse("s3://bkt/a/b/").unwrap(),
            RepoUrl::S3 {
                bucket: "bkt".into(),
                prefix: "a/b/".into()
            }
        );
        assert_eq!(
            RepoUrl::parse("s3://bkt").unwrap(),
            RepoUrl::S3 {
                bucket: "bkt".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            RepoUrl::parse("file:///var/backups").unwrap(),
            RepoUrl::Local("/var/backups".into())
        );
        assert_eq!(
            RepoUrl::parse("./repo").unwrap(),
            RepoUrl::Local("./repo".into())
        );
        assert!(RepoUrl::parse("s3:///x").is_err());
        assert!(RepoUrl::parse("gs://b").is_err());
        assert!(RepoUrl::parse("file://relative").is_err());
    }

    #[test]
    fn keys_cannot_escape() {
        assert!(check_key("db/x.dump").is_ok());
        for bad in ["", "/abs", "a/../b", "./a", "a\0b"] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
    }
}
