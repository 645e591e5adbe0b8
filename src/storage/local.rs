//! A repository in a local directory: same key layout as S3. Objects are written under a hidden
//! temporary name, fsynced, then linked into place, so a crash never leaves a partial object under
//! a real key; leftovers show up as incomplete uploads.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::{check_key, IncompleteUpload, ObjectInfo, Storage, Upload};
use crate::error::Error;

const PARTIAL: &str = ".partial-";
const DOWNLOAD_CHUNK: usize = 1024 * 1024;

pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn open(root: &Path) -> Result<LocalStorage> {
        fs::create_dir_all(root).map_err(|e| {
            Error::failed(format!(
                "cannot use {} as a repository: {e}",
                root.display()
            ))
            .hint("create the directory or pick another --repo you can write to")
        })?;
        Ok(LocalStorage {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

/// `dir/.name.partial-<id>` for `dir/name`.
fn partial_path(path: &Path, id: &str) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}{PARTIAL}{id}"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("keys have a parent");
    fs::create_dir_all(dir)?;
    let tmp = partial_path(path, &uuid::Uuid::new_v4().simple().to_string());
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn modified(meta: &fs::Metadata) -> Option<DateTime<Utc>> {
    meta.modified().ok().map(DateTime::<Utc>::from)
}

/// Every file under `dir`, as (key relative to `root`, metadata).
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, String, fs::Metadata)>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        let path = entry.path();
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let key = rel.to_string_lossy().to_string();
            let name = entry.file_name().to_string_lossy().to_string();
            out.push((key, name, meta));
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

#[async_trait]
impl Storage for LocalStorage {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn location(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }

    async fn check(&self) -> Result<()> {
        // Proves the directory takes new files, as a backup will need.
        let probe = self.root.join(format!(
            ".pgsafe-probe{PARTIAL}{}",
            uuid::Uuid::new_v4().simple()
        ));
        let shown = self.root.display().to_string();
        blocking(move || {
            File::create(&probe)?;
            fs::remove_file(&probe)
        })
        .await
        .map_err(|e| {
            Error::failed(format!("cannot write to the repository {shown}: {e}"))
                .hint("fix the directory's permissions or free space, or pick another --repo")
        })?;
        Ok(())
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.path(key)?;
        let shown = path.display().to_string();
        blocking(move || write_atomic(&path, &data))
            .await
            .with_context(|| format!("could not write {shown}"))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Some(data.into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("could not read {}", path.display())),
        }
    }

    async fn download(&self, key: &str, sink: tokio::sync::mpsc::Sender<Bytes>) -> Result<bool> {
        use tokio::io::AsyncReadExt;
        let path = self.path(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("could not read {}", path.display())),
        };
        loop {
            let mut buf = bytes::BytesMut::with_capacity(DOWNLOAD_CHUNK);
            let n = file
                .read_buf(&mut buf)
                .await
                .with_context(|| format!("could not read {}", path.display()))?;
            if n == 0 {
                return Ok(true);
            }
            if sink.send(buf.freeze()).await.is_err() {
                return Ok(true);
            }
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let root = self.root.clone();
        let mut found = blocking(move || {
            let mut out = Vec::new();
            walk(&root, &root, &mut out)?;
            Ok(out)
        })
        .await
        .with_context(|| format!("could not list {}", self.root.display()))?;
        found.retain(|(key, name, _)| key.starts_with(prefix) && !name.starts_with('.'));
        let mut objects: Vec<ObjectInfo> = found
            .into_iter()
            .map(|(key, _, meta)| ObjectInfo {
                key,
                size: meta.len(),
                modified: modified(&meta),
            })
            .collect();
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("could not delete {}", path.display())),
        }
    }

    async fn begin_upload(&self, key: &str) -> Result<Box<dyn Upload>> {
        let path = self.path(key)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let temp = partial_path(&path, &id);
        let (file, temp) = blocking(move || {
            fs::create_dir_all(temp.parent().expect("keys have a parent"))?;
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            Ok((f, temp))
        })
        .await
        .map_err(|e| {
            Error::failed(format!("could not start writing {}: {e}", path.display()))
                .hint("check that the repository directory is writable and has free space")
        })?;
        Ok(Box::new(LocalUpload {
            file: Arc::new(file),
            temp,
            path,
        }))
    }

    async fn abort_incomplete(&self, upload: &IncompleteUpload) -> Result<()> {
        if upload.upload_id.is_empty() || upload.upload_id.contains('/') {
            anyhow::bail!("invalid upload id {:?}", upload.upload_id);
        }
        let path = partial_path(&self.path(&upload.key)?, &upload.upload_id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("could not delete {}", path.display())),
        }
    }

    async fn incomplete_uploads(&self, prefix: &str) -> Result<Vec<IncompleteUpload>> {
        let root = self.root.clone();
        let found = blocking(move || {
            let mut out = Vec::new();
            walk(&root, &root, &mut out)?;
            Ok(out)
        })
        .await?;
        let mut uploads = Vec::new();
        for (key, name, meta) in found {
            let Some((base, id)) = name.strip_prefix('.').and_then(|n| n.split_once(PARTIAL))
            else {
                continue;
            };
            let dir = key
                .rsplit_once('/')
                .map(|(d, _)| format!("{d}/"))
                .unwrap_or_default();
            let key = format!("{dir}{base}");
            if key.starts_with(prefix) {
                uploads.push(IncompleteUpload {
                    key,
                    upload_id: id.to_string(),
                    started: modified(&meta),
                });
            }
        }
        uploads.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(uploads)
    }
}

struct LocalUpload {
    file: Arc<File>,
    temp: PathBuf,
    path: PathBuf,
}

#[async_trait]
impl Upload for LocalUpload {
    async fn put_part(&self, _number: u32, offset: u64, data: Bytes) -> Result<()> {
        let file = self.file.clone();
        blocking(move || file.write_all_at(&data, offset))
            .await
            .with_context(|| format!("could not write {}", self.temp.display()))
    }

    async fn complete(&self) -> Result<()> {
        let (file, temp, path) = (self.file.clone(), self.temp.clone(), self.path.clone());
        let shown = path.display().to_string();
        blocking(move || {
            file.sync_all()?;
            // A hard link fails when the key exists: an existing backup is never replaced.
            let linked = fs::hard_link(&temp, &path);
            fs::remove_file(&temp)?;
            linked?;
            sync_dir(path.parent().expect("keys have a parent"))
        })
        .await
        .with_context(|| format!("could not finish writing {shown}"))
    }

    async fn abort(&self) -> Result<()> {
        let temp = self.temp.clone();
        match tokio::fs::remove_file(&temp).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("could not remove {}", temp.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upload_is_invisible_until_complete_and_never_clobbers() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(dir.path()).unwrap();
        let up = s.begin_upload("db/a.dump").await.unwrap();
        up.put_part(2, 3, Bytes::from_static(b"def")).await.unwrap();
        up.put_part(1, 0, Bytes::from_static(b"abc")).await.unwrap();
        assert!(s.list("").await.unwrap().is_empty());
        assert_eq!(
            s.incomplete_uploads("db/").await.unwrap()[0].key,
            "db/a.dump"
        );
        up.complete().await.unwrap();
        assert_eq!(s.get("db/a.dump").await.unwrap().unwrap(), "abcdef");
        assert!(s.incomplete_uploads("").await.unwrap().is_empty());

        let again = s.begin_upload("db/a.dump").await.unwrap();
        again
            .put_part(1, 0, Bytes::from_static(b"x"))
            .await
            .unwrap();
        assert!(again.complete().await.is_err());
        assert_eq!(s.get("db/a.dump").await.unwrap().unwrap(), "abcdef");
        assert!(s.incomplete_uploads("").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn abort_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::open(dir.path()).unwrap();
        let up = s.begin_upload("db/b.dump").await.unwrap();
        up.put_part(1, 0, Bytes::from_static(b"abc")).await.unwrap();
        up.abort().await.unwrap();
        assert!(s.list("").await.unwrap().is_empty());
        assert!(s.incomplete_uploads("").await.unwrap().is_empty());
    }
}
