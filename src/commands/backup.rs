//! `pgsafe backup`: pg_dump -> compression + SHA-256 -> storage, then the manifest, last.
//!
//! Order matters: the snapshot is exported first so pg_dump and the row counts see the same data;
//! the upload is completed only after pg_dump exited 0 with its stdout at EOF; the manifest is
//! written only after the upload completed. Any failure or signal stops pg_dump's process group
//! and aborts the upload, so a failed run never leaves something that looks like a backup.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{finish_job, open_repo, print_json, Ctx};
use crate::catalog::id::{backup_id, keys, validate_tag};
use crate::catalog::manifest::{
    DumpFacts, Manifest, ServerFacts, StoredGlobals, StoredObject, SCHEMA_VERSION,
};
use crate::cli::{BackupArgs, CompressionArg};
use crate::config::Config;
use crate::error::Error;
use crate::notify::Notifier;
use crate::output::{self, Progress};
use crate::pg::dump::{self, DumpOptions};
use crate::pg::migrations::MigrationState;
use crate::pg::session::{self, TableRows};
use crate::pg::{tools, ConnInfo, PgTool};
use crate::pipeline::{self, parts, Algorithm, Compression, Counters, Digest, StreamSummary};
use crate::process::GRACE;
use crate::storage::{multipart, Storage, Upload};
use nix::sys::signal::Signal;

const MIB: u64 = 1024 * 1024;

/// What `--json` prints and the human summary shows.
#[derive(Debug, Serialize)]
pub struct Summary<'a> {
    pub backup_id: &'a str,
    pub database: &'a str,
    pub tag: Option<&'a str>,
    pub repository: String,
    pub location: String,
    pub object_key: &'a str,
    pub manifest_key: String,
    pub compression: Algorithm,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub sha256: &'a str,
    pub archive_sha256: &'a str,
    pub tables: usize,
    pub total_rows: i64,
    pub duration_seconds: f64,
    /// What the anomaly guard flagged against the previous backup.
    pub anomalies: &'a [String],
    pub globals_key: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub migrations_table: Option<String>,
    pub compression: Compression,
    pub first_part: u64,
    pub in_flight: usize,
    pub dump: DumpOptions,
    /// Also store `pg_dumpall --globals-only` beside the archive.
    pub globals: bool,
    /// Flag a fall of raw size or rows larger than this percentage; `None`: no guard.
    pub anomaly_threshold: Option<f64>,
}

fn settings(args: &BackupArgs, config: &Config) -> Result<Settings, Error> {
    let file = &config.backup;
    let algorithm = match args.compression {
        Some(CompressionArg::Zstd) => Algorithm::Zstd,
        Some(CompressionArg::Gzip) => Algorithm::Gzip,
        Some(CompressionArg::None) => Algorithm::None,
        None => match file.compression.as_deref() {
            Some("gzip") => Algorithm::Gzip,
            Some("none") => Algorithm::None,
            _ => Algorithm::Zstd,
        },
    };
    let compression = Compression::new(
        algorithm,
        args.compression_level.or(file.compression_level),
        args.compression_threads.or(file.compression_threads),
    )
    .map_err(Error::usage)?;
    if let Some(tag) = &args.tag {
        validate_tag(tag)?;
    }
    let first_part = args.part_size_mib.saturating_mul(MIB);
    if first_part > parts::MAX_PART_SIZE || parts::capacity(first_part) < parts::MAX_OBJECT_SIZE {
        return Err(Error::usage(format!(
            "--part-size-mib {} is out of range",
            args.part_size_mib
        ))
        .hint("use 6 to 5120: S3 parts are at most 5 GiB, and 10,000 parts must be able to hold a 5 TiB archive"));
    }
    if args.parts_in_flight == 0 || args.parts_in_flight > 64 {
        return Err(Error::usage("--parts-in-flight must be 1 to 64"));
    }
    let migrations_table = args
        .migrations_table
        .clone()
        .or_else(|| file.migrations_table.clone());
    if let Some(spec) = &migrations_table {
        crate::pg::migrations::parse_custom(spec)?;
    }
    let threshold = args
        .anomaly_threshold
        .or(file.anomaly_threshold_percent)
        .unwrap_or(DEFAULT_ANOMALY_THRESHOLD);
    if !(0.0..=100.0).contains(&threshold) {
        return Err(Error::usage(
            "--anomaly-threshold must be between 0 and 100",
        ));
    }
    Ok(Settings {
        migrations_table,
        compression,
        first_part,
        in_flight: args.parts_in_flight,
        dump: DumpOptions {
            snapshot: None,
            with_owner: args.with_owner,
            with_acl: args.with_acl,
        },
        globals: args.globals || file.globals,
        anomaly_threshold: Some(threshold),
    })
}

/// The default of `--anomaly-threshold`: a fall of more than half.
pub const DEFAULT_ANOMALY_THRESHOLD: f64 = 50.0;

/// The databases to back up: `--all`, `--database NAME`s of the configuration, or the one
/// `--database-url` / PG* name.
async fn targets(args: &BackupArgs, config: &Config) -> Result<Vec<ConnInfo>> {
    let env = |k: &str| std::env::var(k).ok();
    if !args.databases.is_empty() || (args.all && !config.databases.is_empty()) {
        let names: Vec<&String> = if args.all {
            config.databases.keys().collect()
        } else {
            args.databases.iter().collect()
        };
        return names
            .into_iter()
            .map(|n| config.database_conn(n, &env).map_err(Into::into))
            .collect();
    }
    let conn = ConnInfo::resolve(args.database_url.as_deref(), &env)?;
    if !args.all {
        return Ok(vec![conn]);
    }
    let client = session::connect(&conn).await?;
    let names: Vec<String> = client
        .query(
            "SELECT datname::text FROM pg_database WHERE NOT datistemplate AND datallowconn \
             ORDER BY datname",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(names.iter().map(|n| conn.with_dbname(n)).collect())
}

pub async fn run(
    args: BackupArgs,
    config: &Config,
    ctx: Ctx,
    cancel: CancellationToken,
) -> Result<()> {
    let settings = settings(&args, config)?;
    let targets = targets(&args, config).await?;
    let storage = open_repo(&args.repo, config).await?;
    let notifier = Notifier::new(&args.notify, config);
    let pg_bin_dir = args
        .pg_bin_dir
        .clone()
        .or_else(|| config.backup.pg_bin_dir.clone());
    notifier.start().await;
    let started = Utc::now();
    let mut manifests = Vec::new();
    let mut failures = Vec::new();
    for conn in &targets {
        if cancel.is_cancelled() {
            failures.push((conn.dbname().to_string(), Error::interrupted().into()));
            break;
        }
        let r = backup(
            conn,
            storage.as_ref(),
            args.tag.as_deref(),
            pg_bin_dir.as_deref(),
            settings.clone(),
            ctx,
            &cancel,
        )
        .await;
        match r {
            Ok(m) => {
                if !ctx.json {
                    print_human(&summarize(&m, storage.as_ref()));
                }
                manifests.push(m);
            }
            Err(e) => {
                if targets.len() > 1 {
                    output::print_error(
                        &format!("backup of {} failed: {e:#}", conn.redacted()),
                        crate::error::classify(&e).1.as_deref(),
                    );
                }
                let stop = crate::error::is_interrupted(&e);
                failures.push((conn.dbname().to_string(), e));
                if stop {
                    break;
                }
            }
        }
    }
    let summaries: Vec<Summary> = manifests
        .iter()
        .map(|m| summarize(m, storage.as_ref()))
        .collect();
    let anomalies: Vec<String> = manifests
        .iter()
        .flat_map(|m| m.anomalies.iter().map(|a| format!("{}: {a}", m.database)))
        .collect();
    let mut databases: Vec<String> = manifests.iter().map(|m| m.database.clone()).collect();
    databases.extend(failures.iter().map(|(d, _)| d.clone()));
    let error = match failures.len() {
        0 => None,
        1 if targets.len() == 1 => failures.pop().map(|(_, e)| e),
        n => {
            let names: Vec<String> = failures.iter().map(|(d, _)| d.clone()).collect();
            let (_, first) = failures.remove(0);
            Some(first.context(format!(
                "{n} of {} backups failed ({})",
                targets.len(),
                names.join(", ")
            )))
        }
    };
    finish_job(
        "backup",
        started,
        &notifier,
        storage.as_ref(),
        databases,
        serde_json::to_value(&summaries)?,
        anomalies,
        error.as_ref(),
    )
    .await;
    if ctx.json {
        if targets.len() == 1 && !args.all {
            if let Some(s) = summaries.first() {
                print_json(s)?;
            }
        } else {
            print_json(&summaries)?;
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn summarize<'a>(m: &'a Manifest, storage: &dyn Storage) -> Summary<'a> {
    Summary {
        backup_id: &m.backup_id,
        database: &m.database,
        tag: m.tag.as_deref(),
        repository: storage.describe(),
        location: storage.location(&m.object.key),
        object_key: &m.object.key,
        manifest_key: crate::catalog::id::keys(
            &m.database,
            &m.backup_id,
            m.object.compression.algorithm,
        )
        .manifest,
        compression: m.object.compression.algorithm,
        raw_bytes: m.archive.bytes,
        stored_bytes: m.object.bytes,
        sha256: &m.object.sha256,
        archive_sha256: &m.archive.sha256,
        tables: m.tables.len(),
        total_rows: m.total_rows(),
        duration_seconds: (m.finished_at - m.started_at).num_milliseconds() as f64 / 1000.0,
        anomalies: &m.anomalies,
        globals_key: m.globals.as_ref().map(|g| g.object.key.as_str()),
    }
}

fn print_human(s: &Summary) {
    let ratio = if s.raw_bytes > 0 {
        format!(
            " ({:.0}% of raw)",
            100.0 * s.stored_bytes as f64 / s.raw_bytes as f64
        )
    } else {
        String::new()
    };
    println!("backup {} complete", s.backup_id);
    println!("  database   {}", s.database);
    if let Some(tag) = s.tag {
        println!("  tag        {tag}");
    }
    println!("  stored     {}", s.location);
    println!(
        "  size       {} raw, {} stored{}",
        output::bytes(s.raw_bytes),
        output::bytes(s.stored_bytes),
        ratio
    );
    println!("  sha256     {}", s.sha256);
    println!("  rows       {} in {} tables", s.total_rows, s.tables);
    if let Some(g) = s.globals_key {
        println!("  globals    {g}");
    }
    println!(
        "  took       {}",
        output::duration(std::time::Duration::from_secs_f64(s.duration_seconds))
    );
    for a in s.anomalies {
        println!("  ANOMALY    {a}");
    }
}

/// Takes one backup of `conn`'s database into `storage` and returns its manifest.
pub(crate) async fn backup(
    conn: &ConnInfo,
    storage: &dyn Storage,
    tag: Option<&str>,
    pg_bin_dir: Option<&std::path::Path>,
    mut settings: Settings,
    ctx: Ctx,
    cancel: &CancellationToken,
) -> Result<Manifest> {
    info!("backing up {} to {}", conn.redacted(), storage.describe());
    storage.check().await?;
    let client = session::connect(conn).await?;
    let db = session::database_info(&client).await?;
    let pg_dump = tools::find("pg_dump", pg_bin_dir, db.major())?;
    info!(
        "server PostgreSQL {}; using {} ({})",
        db.server_version,
        pg_dump.path.display(),
        pg_dump.version
    );

    // The anomaly guard compares with the newest backup of the same database.
    let previous = match settings.anomaly_threshold {
        Some(_) => crate::catalog::list(storage, Some(conn.dbname()), false)
            .await?
            .backups
            .pop(),
        None => None,
    };
    // Globals first: a few kilobytes, and a missing privilege fails before the long dump.
    let globals_sql = if settings.globals {
        let pg_dumpall = tools::find("pg_dumpall", pg_bin_dir, db.major())?;
        Some(crate::pg::globals::dump(&pg_dumpall, conn).await?)
    } else {
        None
    };

    let snapshot = session::export_snapshot(&client).await?;
    settings.dump.snapshot = Some(snapshot);
    // IDs have one-second resolution. When the previous backup of this database began in the
    // same second (two jobs back to back), this one waits for the next second: an existing
    // backup is never overwritten, and a scheduled run does not fail for it.
    let mut attempt = 0;
    let (started, id, keys) = loop {
        let started = Utc::now();
        let id = backup_id(started, conn.dbname(), tag);
        let keys = keys(conn.dbname(), &id, settings.compression.algorithm);
        if storage.get(&keys.manifest).await?.is_none() {
            break (started, id, keys);
        }
        attempt += 1;
        if attempt == 3 {
            return Err(Error::failed(format!("backup {id} already exists"))
                .hint("backup IDs have one-second resolution: run again in a second")
                .into());
        }
        let rest = 1000 - u64::from(started.timestamp_subsec_millis().min(999));
        tokio::time::sleep(std::time::Duration::from_millis(rest + 5)).await;
    };
    if cancel.is_cancelled() {
        return Err(Error::interrupted().into());
    }

    let upload = storage.begin_upload(&keys.object).await?;
    let clock = Instant::now();
    let counters = Arc::new(Counters::default());
    let progress = {
        let c = counters.clone();
        Progress::start(ctx.progress, move |elapsed| {
            let rate = c.raw() as f64 / elapsed.as_secs_f64().max(0.001);
            format!(
                "backup: {} dumped, {} stored, {}/s",
                output::bytes(c.raw()),
                output::bytes(c.stored()),
                output::bytes(rate as u64)
            )
        })
    };
    let streamed = stream_dump(
        &pg_dump,
        conn,
        &settings,
        upload.as_ref(),
        &client,
        counters,
        cancel,
    )
    .await;
    drop(progress);
    let (summary, (tables, migrations)) = match streamed {
        Ok(done) if !cancel.is_cancelled() => done,
        outcome => {
            abort(upload, &keys.object).await;
            return Err(outcome.err().unwrap_or_else(|| Error::interrupted().into()));
        }
    };
    if let Err(e) = upload.complete().await {
        abort(upload, &keys.object).await;
        return Err(e.context(
            "the archive could not be committed to the repository; no backup was recorded",
        ));
    }
    // The snapshot transaction only had to outlive pg_dump.
    let _ = client.batch_execute("ROLLBACK").await;
    let globals = match globals_sql {
        Some(sql) => match store_globals(storage, conn.dbname(), &id, &settings.compression, sql)
            .await
        {
            Ok(g) => Some(g),
            Err(e) => {
                remove_orphan(storage, &keys.object).await;
                return Err(e.context("the globals could not be stored; no backup was recorded"));
            }
        },
        None => None,
    };
    let total_rows: i64 = tables.iter().map(|t| t.rows).sum();
    let anomalies = match (&previous, settings.anomaly_threshold) {
        (Some(prev), Some(threshold)) => anomalies(prev, summary.raw.bytes, total_rows, threshold),
        _ => Vec::new(),
    };
    for a in &anomalies {
        warn!("anomaly guard: {a}");
    }

    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        backup_id: id.clone(),
        database: conn.dbname().to_string(),
        tag: tag.map(str::to_string),
        started_at: started,
        finished_at: Utc::now(),
        pgsafe_version: env!("CARGO_PKG_VERSION").to_string(),
        pg_dump_version: pg_dump.version.clone(),
        server: ServerFacts {
            version: db.server_version.clone(),
            version_num: db.server_version_num,
            encoding: db.encoding.clone(),
            lc_collate: db.lc_collate.clone(),
            lc_ctype: db.lc_ctype.clone(),
            locale_provider: db.locale_provider.clone(),
            icu_locale: db.icu_locale.clone(),
        },
        dump: DumpFacts {
            format: "custom".into(),
            snapshot: settings.dump.snapshot.clone(),
            no_owner: !settings.dump.with_owner,
            no_acl: !settings.dump.with_acl,
        },
        object: StoredObject {
            key: keys.object.clone(),
            compression: settings.compression,
            bytes: summary.stored.bytes,
            sha256: summary.stored.sha256.clone(),
        },
        archive: summary.raw.clone(),
        extensions: db.extensions.clone(),
        tables,
        migrations,
        source: conn.redacted(),
        globals,
        anomalies,
    };
    if cancel.is_cancelled() {
        remove_orphan(storage, &keys.object).await;
        return Err(Error::interrupted().into());
    }
    if let Err(e) = storage
        .put(&keys.manifest, Bytes::from(manifest.to_json()))
        .await
    {
        remove_orphan(storage, &keys.object).await;
        if let Some(g) = &manifest.globals {
            remove_orphan(storage, &g.object.key).await;
        }
        return Err(e.context("the manifest could not be written, so this run is not a backup"));
    }
    info!(
        "backup {id}: {} raw, {} stored in {} part{}, {}",
        output::bytes(summary.raw.bytes),
        output::bytes(summary.stored.bytes),
        summary.parts,
        if summary.parts == 1 { "" } else { "s" },
        output::duration(clock.elapsed())
    );
    Ok(manifest)
}

/// Compresses and stores the globals SQL beside the archive, with both checksums.
async fn store_globals(
    storage: &dyn Storage,
    database: &str,
    id: &str,
    compression: &Compression,
    sql: Vec<u8>,
) -> Result<StoredGlobals> {
    let mut raw = Digest::new();
    raw.update(&sql);
    let mut enc = pipeline::compress::encoder(compression, Vec::new())?;
    io::Write::write_all(&mut enc, &sql)?;
    let stored = enc.finish()?;
    let mut digest = Digest::new();
    digest.update(&stored);
    let stored_sum = digest.finish();
    let key = crate::catalog::id::globals_key(database, id, compression.algorithm);
    storage.put(&key, Bytes::from(stored)).await?;
    Ok(StoredGlobals {
        object: StoredObject {
            key,
            compression: *compression,
            bytes: stored_sum.bytes,
            sha256: stored_sum.sha256,
        },
        sql: raw.finish(),
    })
}

/// What the anomaly guard says of a backup against the previous one of the same database.
pub fn anomalies(previous: &Manifest, raw_bytes: u64, rows: i64, threshold: f64) -> Vec<String> {
    let mut found = Vec::new();
    let fell = |before: f64, now: f64| before > 0.0 && now < before * (1.0 - threshold / 100.0);
    let pct = |before: f64, now: f64| 100.0 * (before - now) / before;
    let (b, n) = (previous.archive.bytes as f64, raw_bytes as f64);
    if fell(b, n) {
        found.push(format!(
            "raw size fell {:.0}% (from {} to {}) against backup {}",
            pct(b, n),
            output::bytes(previous.archive.bytes),
            output::bytes(raw_bytes),
            previous.backup_id
        ));
    }
    let (b, n) = (previous.total_rows() as f64, rows as f64);
    if fell(b, n) {
        found.push(format!(
            "row count fell {:.0}% (from {} to {}) against backup {}",
            pct(b, n),
            previous.total_rows(),
            rows,
            previous.backup_id
        ));
    }
    found
}

async fn abort(upload: Box<dyn Upload>, key: &str) {
    match upload.abort().await {
        Ok(()) => info!("upload of {key} aborted; nothing was recorded"),
        Err(e) => warn!(
            "could not abort the upload of {key}: {e:#}; `pgsafe list` shows it as incomplete"
        ),
    }
}

async fn remove_orphan(storage: &dyn Storage, key: &str) {
    if let Err(e) = storage.delete(key).await {
        warn!("could not remove {key}, which has no manifest and is not a backup: {e:#}");
    }
}

/// pg_dump's pipe holds 1 MiB instead of the kernel's 64 KiB, so pg_dump keeps writing while the
/// pipeline thread hashes and compresses the previous chunk. Best effort: a smaller pipe only
/// costs speed (the limit is /proc/sys/fs/pipe-max-size for unprivileged users).
fn widen_pipe(stdout: &std::process::ChildStdout) {
    use nix::fcntl::{fcntl, FcntlArg};
    use std::os::fd::AsRawFd;
    if let Err(e) = fcntl(stdout.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(1 << 20)) {
        tracing::debug!("pg_dump's pipe keeps its size: {e}");
    }
}

/// Runs pg_dump into the upload while counting rows in the same snapshot. Succeeds only when
/// pg_dump's output reached EOF, pg_dump exited 0 and every part was stored.
async fn stream_dump(
    pg_dump: &PgTool,
    conn: &ConnInfo,
    settings: &Settings,
    upload: &dyn Upload,
    client: &tokio_postgres::Client,
    counters: Arc<Counters>,
    cancel: &CancellationToken,
) -> Result<(StreamSummary, (Vec<TableRows>, Vec<MigrationState>))> {
    let mut child = dump::spawn(pg_dump, conn, &settings.dump)?;
    let stdout = child.take_stdout().expect("pg_dump stdout is piped");
    widen_pipe(&stdout);
    let killer = child.killer();
    let stop = Arc::new(AtomicBool::new(false));
    // One part queued while others upload: memory is about (in_flight + 2) parts.
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    // The pipeline thread owns pg_dump: at EOF it reaps it and checks its exit status, so a
    // failing pg_dump is noticed at once, even while the row counts are still running.
    let mut stream = {
        let (stop, compression, first) = (stop.clone(), settings.compression, settings.first_part);
        tokio::task::spawn_blocking(move || -> Result<StreamSummary> {
            let summary =
                pipeline::run(stdout, &compression, first, &counters, &stop, move |part| {
                    tx.blocking_send(part)
                        .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
                });
            // On error, dropping `child` stops its process group.
            let summary = summary.context("reading or compressing pg_dump's output failed")?;
            let finished = child.wait_blocking()?;
            finished.check("pg_dump")?;
            if !finished.stderr.is_empty() {
                warn!("pg_dump said: {}", finished.stderr);
            }
            Ok(summary)
        })
    };
    let work = async {
        let (_, summary, tables) = tokio::try_join!(
            multipart::send_parts(upload, rx, settings.in_flight),
            async {
                (&mut stream)
                    .await
                    .context("the backup pipeline thread failed")?
            },
            async {
                let tables = session::table_row_counts(client).await?;
                let custom = settings.migrations_table.as_deref();
                let migrations = crate::pg::migrations::read(client, custom).await?;
                Ok::<_, anyhow::Error>((tables, migrations))
            },
        )?;
        Ok::<_, anyhow::Error>((summary, tables))
    };
    let outcome = tokio::select! {
        r = work => r,
        _ = cancel.cancelled() => Err(Error::interrupted().into()),
    };
    if outcome.is_err() {
        stop.store(true, Ordering::Relaxed);
        // Queries still running in the snapshot transaction (row counts) are cancelled too.
        let _ = client
            .cancel_token()
            .cancel_query(tokio_postgres::NoTls)
            .await;
        if !stream.is_finished() {
            killer.signal(Signal::SIGTERM);
            if tokio::time::timeout(GRACE, &mut stream).await.is_err() {
                killer.signal(Signal::SIGKILL);
                let _ = stream.await;
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_dumps_pipe_is_widened_to_one_mib() {
        use nix::fcntl::{fcntl, FcntlArg};
        use std::os::fd::AsRawFd;
        let mut child = std::process::Command::new("true")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let before = fcntl(stdout.as_raw_fd(), FcntlArg::F_GETPIPE_SZ).unwrap();
        widen_pipe(&stdout);
        let after = fcntl(stdout.as_raw_fd(), FcntlArg::F_GETPIPE_SZ).unwrap();
        child.wait().unwrap();
        assert!(
            before < 1 << 20,
            "the kernel's default is smaller: {before}"
        );
        assert_eq!(after, 1 << 20);
    }
}
