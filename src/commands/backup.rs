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

use super::{open_repo, print_json, Ctx};
use crate::catalog::id::{backup_id, keys, validate_tag};
use crate::catalog::manifest::{DumpFacts, Manifest, ServerFacts, StoredObject, SCHEMA_VERSION};
use crate::cli::{BackupArgs, CompressionArg};
use crate::error::Error;
use crate::output::{self, Progress};
use crate::pg::dump::{self, DumpOptions};
use crate::pg::migrations::MigrationState;
use crate::pg::session::{self, TableRows};
use crate::pg::{tools, ConnInfo, PgTool};
use crate::pipeline::{self, parts, Algorithm, Compression, Counters, StreamSummary};
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
}

pub(crate) struct Settings {
    pub migrations_table: Option<String>,
    pub compression: Compression,
    pub first_part: u64,
    pub in_flight: usize,
    pub dump: DumpOptions,
}

fn settings(args: &BackupArgs) -> Result<Settings, Error> {
    let algorithm = match args.compression {
        CompressionArg::Zstd => Algorithm::Zstd,
        CompressionArg::Gzip => Algorithm::Gzip,
        CompressionArg::None => Algorithm::None,
    };
    let compression = Compression::new(algorithm, args.compression_level, args.compression_threads)
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
    if let Some(spec) = &args.migrations_table {
        crate::pg::migrations::parse_custom(spec)?;
    }
    Ok(Settings {
        migrations_table: args.migrations_table.clone(),
        compression,
        first_part,
        in_flight: args.parts_in_flight,
        dump: DumpOptions {
            snapshot: None,
            with_owner: args.with_owner,
            with_acl: args.with_acl,
        },
    })
}

pub async fn run(args: BackupArgs, ctx: Ctx, cancel: CancellationToken) -> Result<()> {
    let settings = settings(&args)?;
    let conn = ConnInfo::resolve(args.database_url.as_deref(), &|k| std::env::var(k).ok())?;
    let storage = open_repo(&args.repo).await?;
    let manifest = backup(
        &conn,
        storage.as_ref(),
        args.tag.as_deref(),
        args.pg_bin_dir.as_deref(),
        settings,
        ctx,
        &cancel,
    )
    .await?;
    let summary = summarize(&manifest, storage.as_ref());
    if ctx.json {
        print_json(&summary)?;
    } else {
        print_human(&summary);
    }
    Ok(())
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
    println!(
        "  took       {}",
        output::duration(std::time::Duration::from_secs_f64(s.duration_seconds))
    );
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

    let snapshot = session::export_snapshot(&client).await?;
    settings.dump.snapshot = Some(snapshot);
    let started = Utc::now();
    let id = backup_id(started, conn.dbname(), tag);
    let keys = keys(conn.dbname(), &id, settings.compression.algorithm);
    if storage.get(&keys.manifest).await?.is_some() {
        return Err(Error::failed(format!("backup {id} already exists"))
            .hint("backup IDs have one-second resolution: run again in a second")
            .into());
    }
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
        return Err(e.context("the manifest could not be written, so this run is not a backup"));
    }
    info!(
        "backup {id}: {} raw, {} stored in {} parts, {}",
        output::bytes(summary.raw.bytes),
        output::bytes(summary.stored.bytes),
        summary.parts,
        output::duration(clock.elapsed())
    );
    Ok(manifest)
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
