//! Fetching a backup before anything destructive: download into a work directory, recompute
//! both SHA-256s on the way (stored object and decompressed archive), then make pg_restore read
//! the table of contents. Any mismatch is a corrupt backup (exit 5) and nothing is kept.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::toc::{self, Entry};
use crate::catalog::Manifest;
use crate::error::Error;
use crate::output::{Progress, ProgressMode};
use crate::pg::PgTool;
use crate::pipeline::compress::decoder_writer;
use crate::pipeline::{Checksum, Digest};
use crate::storage::Storage;

/// Room kept free beside the archive, for pg_restore's and the system's needs.
const SPARE_BYTES: u64 = 64 * 1024 * 1024;

/// A directory of pgsafe's own under `--work-dir`, removed with everything in it when dropped.
pub struct WorkDir {
    path: PathBuf,
}

impl WorkDir {
    pub fn create(base: &Path, label: &str) -> Result<WorkDir> {
        std::fs::create_dir_all(base).map_err(|e| {
            Error::failed(format!(
                "cannot create the work directory {}: {e}",
                base.display()
            ))
            .hint("pick a writable --work-dir")
        })?;
        let path = base.join(format!("pgsafe-{label}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(WorkDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A verified archive on local disk.
pub struct Fetched {
    pub archive: PathBuf,
    pub toc: Vec<Entry>,
}

/// Bytes free for an unprivileged writer in the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// Hashes decompressed bytes on the decompressing thread and hands them to a second thread
/// that writes them, so that writing (page-cache allocation, the slowest step on small
/// machines) overlaps decompression and hashing.
struct Handoff {
    buf: Vec<u8>,
    digest: Digest,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    worker: Option<std::thread::JoinHandle<io::Result<()>>>,
}

const HANDOFF_CHUNK: usize = 1024 * 1024;

impl Handoff {
    fn new(mut out: File) -> io::Result<Handoff> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let worker = std::thread::Builder::new()
            .name("archive-writer".into())
            .spawn(move || {
                for chunk in rx {
                    out.write_all(&chunk)?;
                }
                out.flush()
            })?;
        Ok(Handoff {
            buf: Vec::with_capacity(HANDOFF_CHUNK),
            digest: Digest::new(),
            tx: Some(tx),
            worker: Some(worker),
        })
    }

    /// The writer thread's own error, once it has stopped.
    fn worker_error(&mut self) -> io::Error {
        match self.worker.take().map(|w| w.join()) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the archive writer stopped"),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.digest.update(&self.buf);
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(HANDOFF_CHUNK));
        match self.tx.as_ref().map(|tx| tx.send(full)) {
            Some(Ok(())) => Ok(()),
            _ => Err(self.worker_error()),
        }
    }

    fn finish(mut self) -> io::Result<Checksum> {
        self.send()?;
        drop(self.tx.take());
        match self.worker.take().map(|w| w.join()) {
            Some(Ok(result)) => result.map(|()| self.digest.finish()),
            _ => Err(io::Error::other("the archive writer panicked")),
        }
    }
}

impl Write for Handoff {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (HANDOFF_CHUNK - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == HANDOFF_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the download thread saw: both checksums, and a decompression error if any.
struct Received {
    stored: Checksum,
    raw: Option<Checksum>,
    decode_error: Option<io::Error>,
}

fn receive(
    mut rx: mpsc::Receiver<Bytes>,
    manifest: &Manifest,
    out: File,
    received: &AtomicU64,
) -> io::Result<Received> {
    let mut decoder = Some(decoder_writer(
        manifest.object.compression.algorithm,
        Handoff::new(out)?,
    )?);
    let mut stored = Digest::new();
    let mut decode_error = None;
    while let Some(chunk) = rx.blocking_recv() {
        stored.update(&chunk);
        received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if let Some(d) = decoder.as_mut() {
            if let Err(e) = d.write_all(&chunk) {
                // The disk failing is not the backup's fault.
                if e.raw_os_error().is_some() {
                    return Err(e);
                }
                // Keep hashing: a checksum mismatch explains a corrupt object better.
                decode_error = Some(e);
                decoder = None;
            }
        }
    }
    let raw = match decoder.map(|d| d.finish()) {
        Some(Ok(handoff)) => Some(handoff.finish()?),
        Some(Err(e)) if e.raw_os_error().is_some() => return Err(e),
        Some(Err(e)) => {
            decode_error = Some(e);
            None
        }
        None => None,
    };
    Ok(Received {
        stored: stored.finish(),
        raw,
        decode_error,
    })
}

/// A pg_restore able to read the archive: at least as new as the pg_dump that wrote it.
/// Fetches a backup's globals (`pg_dumpall --globals-only`), checks the SHA-256 of the stored
/// object and of the SQL against the manifest, and returns the SQL. A few kilobytes: in memory.
pub async fn fetch_globals(storage: &dyn Storage, m: &Manifest) -> Result<Option<Vec<u8>>> {
    let Some(g) = m.globals.as_ref() else {
        return Ok(None);
    };
    let data = storage.get(&g.object.key).await?.ok_or_else(|| {
        Error::corrupt(format!(
            "the globals {} of backup {} are missing",
            g.object.key, m.backup_id
        ))
    })?;
    let stored = Checksum {
        sha256: g.object.sha256.clone(),
        bytes: g.object.bytes,
    };
    if checksum(&data) != stored {
        return Err(
            Error::corrupt(format!("checksum mismatch for {}", g.object.key))
                .hint("the stored globals are damaged; do not apply them")
                .into(),
        );
    }
    let mut sql = Vec::new();
    std::io::Read::read_to_end(
        &mut crate::pipeline::compress::decoder(g.object.compression.algorithm, &data[..])?,
        &mut sql,
    )
    .map_err(|e| Error::corrupt(format!("{} cannot be decompressed: {e}", g.object.key)))?;
    if checksum(&sql) != g.sql {
        return Err(
            Error::corrupt(format!("checksum mismatch for the SQL of {}", g.object.key)).into(),
        );
    }
    Ok(Some(sql))
}

fn checksum(data: &[u8]) -> Checksum {
    let mut d = Digest::new();
    d.update(data);
    d.finish()
}

pub fn pg_restore_for(manifest: &Manifest, bin_dir: Option<&Path>) -> Result<PgTool, Error> {
    let major = crate::pg::tools::parse_version(&manifest.pg_dump_version)
        .map(|(_, major)| major)
        .unwrap_or(manifest.server.version_num as u32 / 10000);
    crate::pg::tools::find("pg_restore", bin_dir, major)
}

/// Fetches into a new work directory under `base`, removed when the returned `WorkDir` drops.
pub async fn fetch_into(
    storage: &dyn Storage,
    manifest: &Manifest,
    bin_dir: Option<&Path>,
    base: &Path,
    label: &str,
    progress: ProgressMode,
    cancel: &CancellationToken,
) -> Result<(WorkDir, Fetched)> {
    let pg_restore = pg_restore_for(manifest, bin_dir)?;
    let work = WorkDir::create(base, label)?;
    let fetched = fetch(
        storage,
        manifest,
        &pg_restore,
        work.path(),
        progress,
        cancel,
    )
    .await?;
    Ok((work, fetched))
}

/// Downloads, verifies and decompresses the backup into `dir`, then reads its table of contents.
pub async fn fetch(
    storage: &dyn Storage,
    manifest: &Manifest,
    pg_restore: &PgTool,
    dir: &Path,
    progress: ProgressMode,
    cancel: &CancellationToken,
) -> Result<Fetched> {
    let needed = manifest.archive.bytes + SPARE_BYTES;
    if let Some(free) = free_bytes(dir) {
        if free < needed {
            return Err(Error::failed(format!(
                "not enough space in {}: the archive needs {}, {} are free",
                dir.display(),
                crate::output::bytes(needed),
                crate::output::bytes(free)
            ))
            .hint("point --work-dir at a file system with more free space")
            .into());
        }
    }
    let archive = dir.join(format!("{}.dump", manifest.backup_id));
    let out =
        File::create(&archive).with_context(|| format!("cannot create {}", archive.display()))?;
    info!(
        "downloading {} ({}) into {}",
        manifest.object.key,
        crate::output::bytes(manifest.object.bytes),
        dir.display()
    );
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let received_bytes = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (m, counter) = (manifest.clone(), received_bytes.clone());
        tokio::task::spawn_blocking(move || receive(rx, &m, out, &counter))
    };
    let total = manifest.object.bytes;
    let shown = Progress::start(progress, move |elapsed| {
        let done = received_bytes.load(Ordering::Relaxed);
        format!(
            "download: {} of {} ({:.0}%), {}/s",
            crate::output::bytes(done),
            crate::output::bytes(total),
            100.0 * done as f64 / total.max(1) as f64,
            crate::output::bytes((done as f64 / elapsed.as_secs_f64().max(0.001)) as u64)
        )
    });
    let download = storage.download(&manifest.object.key, tx);
    let found = tokio::select! {
        r = download => r?,
        _ = cancel.cancelled() => return Err(Error::interrupted().into()),
    };
    let received = receiver.await.context("the download thread failed")??;
    drop(shown);
    if !found {
        return Err(Error::corrupt(format!(
            "the archive {} named by manifest {} is missing",
            manifest.object.key, manifest.backup_id
        ))
        .hint("the backup cannot be restored; pick another with `pgsafe list`")
        .into());
    }
    if received.stored.sha256 != manifest.object.sha256
        || received.stored.bytes != manifest.object.bytes
    {
        return Err(Error::corrupt(format!(
            "checksum mismatch for {}: the manifest says {} bytes with SHA-256 {}, the repository \
             returned {} bytes with SHA-256 {}",
            manifest.object.key,
            manifest.object.bytes,
            manifest.object.sha256,
            received.stored.bytes,
            received.stored.sha256
        ))
        .hint("the stored object is corrupt or truncated; pick another backup with `pgsafe list`")
        .into());
    }
    let raw_ok = received
        .raw
        .as_ref()
        .is_some_and(|r| r.sha256 == manifest.archive.sha256 && r.bytes == manifest.archive.bytes);
    if !raw_ok {
        let why = match received.decode_error {
            Some(e) => format!("it cannot be decompressed: {e}"),
            None => "the decompressed archive does not match the manifest's SHA-256".to_string(),
        };
        return Err(
            Error::corrupt(format!("backup {} is corrupt: {why}", manifest.backup_id)).into(),
        );
    }
    let listing = list(pg_restore, &archive).await?;
    let toc = toc::parse(&listing);
    info!(
        "archive verified: SHA-256 {} matches, pg_restore reads {} entries",
        manifest.object.sha256,
        toc.len()
    );
    Ok(Fetched { archive, toc })
}

/// `pg_restore --list`: fails when pg_restore cannot read the archive.
pub async fn list(pg_restore: &PgTool, archive: &Path) -> Result<String> {
    let out = tokio::process::Command::new(&pg_restore.path)
        .arg("--list")
        .arg(archive)
        .output()
        .await
        .with_context(|| format!("could not run {}", pg_restore.path.display()))?;
    if !out.status.success() {
        return Err(Error::corrupt(format!(
            "pg_restore {} cannot read the archive: {}",
            pg_restore.version,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .hint("a pg_restore at least as new as the pg_dump that made the backup is needed (--pg-bin-dir)")
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Data of a few MiB in odd-sized writes, so that chunks straddle the handoff's buffer.
    fn write_in_pieces(h: &mut Handoff, data: &[u8]) -> io::Result<()> {
        for piece in data.chunks(333_333) {
            h.write_all(piece)?;
        }
        Ok(())
    }

    fn sample() -> Vec<u8> {
        (0..5 * HANDOFF_CHUNK + 12_345)
            .map(|i| (i * 7 + i / 1000) as u8)
            .collect()
    }

    #[test]
    fn handoff_writes_every_byte_and_hashes_what_it_wrote() {
        let data = sample();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("archive.dump");
        let mut h = Handoff::new(File::create(&path).unwrap()).unwrap();
        write_in_pieces(&mut h, &data).unwrap();
        let sum = h.finish().unwrap();
        assert_eq!(sum, Checksum::of(&data));
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    /// A full disk is an I/O failure (exit 1, "free space"), never taken for a corrupt backup:
    /// the error keeps its OS code, which `receive` uses to tell the two apart.
    #[test]
    fn handoff_reports_a_disk_error_as_an_os_error() {
        let data = sample();
        let mut h = Handoff::new(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .unwrap();
        let err = match write_in_pieces(&mut h, &data) {
            Err(e) => e,
            Ok(()) => h.finish().unwrap_err(),
        };
        assert_eq!(err.raw_os_error(), Some(nix::libc::ENOSPC), "{err}");
    }
}
