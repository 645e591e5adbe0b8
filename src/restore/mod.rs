//! Restores: resolve -> operator interlocks -> fetch and verify -> preflight -> target
//! interlocks -> safety backup -> execute -> integrity (-> swap). Nothing destructive happens
//! before the archive is verified and every interlock agreed; every step lands in the audit
//! record, and whatever fails, the cleanup puts back what pgsafe changed.

pub mod drill;
pub mod execute;
pub mod fetch;
pub mod integrity;
pub mod interlocks;
pub mod toc;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::Utc;
use serde::Serialize;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::catalog::audit::Record;
use crate::catalog::{self, Manifest};
use crate::error::{classify, exit, Error};
use crate::pg::{migrations, session, ConnInfo, PgTool};
use crate::storage::Storage;
use execute::RestoreFlags;
use integrity::Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// A: a new, empty database restored from the backup (staged, then swapped in).
    Fresh,
    /// B: pg_restore --clean over the existing database, in one transaction.
    Clean,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub backup: String,
    pub database: Option<String>,
    /// The target: server, credentials and database name.
    pub target: ConnInfo,
    pub maintenance_db: String,
    pub strategy: Strategy,
    pub in_place: bool,
    pub work_dir: PathBuf,
    pub confirm: Option<String>,
    pub reason: Option<String>,
    pub approved_by: Option<String>,
    pub terminate_connections: bool,
    pub protected: Vec<String>,
    pub allow_protected: bool,
    pub safety_backup: bool,
    pub allow_newer_migrations: bool,
    pub migrations_table: Option<String>,
    pub allow_downgrade: bool,
    pub jobs: u32,
    pub with_owner: bool,
    pub with_acl: bool,
    pub smoke_sql: Vec<String>,
    pub dry_run: bool,
    pub pg_bin_dir: Option<PathBuf>,
    pub audit_log: PathBuf,
    /// Apply the backup's globals (roles, tablespaces) first.
    pub with_globals: bool,
}

/// What a finished (or dry) run reports.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub result: String,
    pub backup_id: String,
    pub target: String,
    pub strategy: Strategy,
    pub in_place: bool,
    pub safety_backup: Option<String>,
    /// Staged Strategy A: where the previous database was kept.
    pub previous_database: Option<String>,
    pub plan: Vec<String>,
    pub integrity: Option<Report>,
    pub duration_seconds: f64,
}

/// What this run changed and must put back if it fails.
#[derive(Default)]
struct Changes {
    /// (database, its connection limit before pgsafe set it to 0)
    connection_limit: Option<(String, i32)>,
    staging: Option<String>,
    repo_lock: Option<String>,
}

pub struct Restore<'a> {
    opts: Options,
    storage: &'a dyn Storage,
    cancel: CancellationToken,
    record: Record,
    changes: Changes,
    maint: Option<Client>,
    progress: crate::output::ProgressMode,
}

fn now() -> (chrono::DateTime<Utc>, Instant) {
    (Utc::now(), Instant::now())
}

impl<'a> Restore<'a> {
    pub fn new(
        opts: Options,
        storage: &'a dyn Storage,
        cancel: CancellationToken,
        progress: crate::output::ProgressMode,
    ) -> Self {
        let record = Record {
            time: Utc::now(),
            action: "restore".into(),
            operator: catalog::audit::operator(),
            host: catalog::audit::host(),
            reason: opts.reason.clone(),
            approved_by: opts.approved_by.clone(),
            backup_id: None,
            backup_sha256: None,
            target: opts.target.redacted(),
            database: opts.target.dbname().to_string(),
            strategy: match (opts.strategy, opts.in_place) {
                (Strategy::Fresh, false) => "A (fresh, staged)".into(),
                (Strategy::Fresh, true) => "A (fresh, in place)".into(),
                (Strategy::Clean, _) => "B (clean)".into(),
            },
            dry_run: opts.dry_run,
            steps: Vec::new(),
            result: String::new(),
            exit_code: 0,
            error: None,
            finished_at: None,
        };
        Restore {
            opts,
            storage,
            cancel,
            record,
            changes: Changes::default(),
            maint: None,
            progress,
        }
    }

    /// Runs the restore, puts back what it changed on failure, and records the audit entry.
    pub async fn run(mut self) -> Result<Outcome> {
        let started = Instant::now();
        let result = self.execute(started).await;
        self.finish(result).await
    }

    /// Puts back what was changed, then records the outcome in the audit log and repository.
    async fn finish(&mut self, result: Result<Outcome>) -> Result<Outcome> {
        self.cleanup().await;
        let code = match &result {
            Ok(_) => exit::OK,
            Err(e) => classify(e).0,
        };
        self.record.exit_code = code;
        self.record.result = match (&result, code) {
            (Ok(o), _) => o.result.clone(),
            (_, exit::REFUSED) => "refused".into(),
            (_, exit::INTEGRITY) => "integrity-failed".into(),
            (_, exit::CORRUPT) => "corrupt".into(),
            (_, exit::INTERRUPTED) => "interrupted".into(),
            _ => "failed".into(),
        };
        self.record.error = result.as_ref().err().map(|e| format!("{e:#}"));
        self.record.finished_at = Some(Utc::now());
        if let Err(e) = self
            .record
            .save(&self.opts.audit_log, Some(self.storage))
            .await
        {
            warn!("audit record not fully saved: {e:#}");
        }
        result
    }

    fn step_ok(
        &mut self,
        name: &str,
        t: (chrono::DateTime<Utc>, Instant),
        detail: impl Into<String>,
    ) {
        let detail = detail.into();
        info!("{name}: {detail}");
        self.record.step(name, t, "ok", detail);
    }

    /// Records a failed step with its outcome, and passes the error on.
    fn step_err<T>(
        &mut self,
        name: &str,
        t: (chrono::DateTime<Utc>, Instant),
        r: Result<T>,
    ) -> Result<T> {
        if let Err(e) = &r {
            let result = if classify(e).0 == exit::REFUSED {
                "refused"
            } else {
                "failed"
            };
            self.record.step(name, t, result, format!("{e:#}"));
        }
        r
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(Error::interrupted().into())
        } else {
            Ok(())
        }
    }

    async fn execute(&mut self, started: Instant) -> Result<Outcome> {
        let target_db = self.opts.target.dbname().to_string();

        // 1. The operator's side of the interlocks: nothing is downloaded before these pass.
        let t = now();
        let r = (|| -> Result<()> {
            interlocks::reason(self.opts.reason.as_deref())?;
            interlocks::protected(&target_db, &self.opts.protected, self.opts.allow_protected)?;
            if !self.opts.dry_run {
                interlocks::confirmation(&target_db, self.opts.confirm.as_deref())?;
            }
            Ok(())
        })();
        self.step_err("decision", t, r)?;
        let confirmed = if self.opts.dry_run {
            "not needed for a dry run"
        } else {
            "confirmed"
        };
        self.step_ok(
            "decision",
            t,
            format!("reason recorded, target {target_db:?} {confirmed}"),
        );

        // 2. The backup.
        let t = now();
        let r = catalog::resolve(
            self.storage,
            &self.opts.backup,
            self.opts.database.as_deref(),
        )
        .await;
        let manifest = self.step_err("resolve", t, r)?;
        self.record.backup_id = Some(manifest.backup_id.clone());
        self.record.backup_sha256 = Some(manifest.object.sha256.clone());
        self.step_ok(
            "resolve",
            t,
            format!(
                "backup {} of {} ({})",
                manifest.backup_id, manifest.database, manifest.started_at
            ),
        );

        // 3. The target server.
        let t = now();
        let r = self.connect_target().await;
        let (target_major, target_exists) = self.step_err("connect", t, r)?;
        self.step_ok(
            "connect",
            t,
            format!(
                "{} (PostgreSQL {target_major}), database {}",
                self.opts.target.redacted(),
                if target_exists {
                    "exists"
                } else {
                    "does not exist yet"
                }
            ),
        );

        if self.opts.strategy == Strategy::Clean && !target_exists {
            return Err(Error::usage(format!(
                "Strategy B restores over an existing database, and {target_db:?} does not exist"
            ))
            .hint("use Strategy A (--strategy fresh) to create it")
            .into());
        }
        let plan = self.plan(&manifest, target_exists);
        if self.opts.dry_run {
            return Ok(self.outcome("dry-run", &manifest, plan, None, None, None, started));
        }

        // 4. Fetch and verify before anything destructive.
        let t = now();
        if self.opts.with_globals && manifest.globals.is_none() {
            let refused = Err(Error::usage(format!(
                "backup {} holds no globals, so --with-globals has nothing to apply",
                manifest.backup_id
            ))
            .hint("take backups with --globals (or backup.globals = true), or restore without --with-globals")
            .into());
            return self.step_err("preflight", t, refused);
        }
        let pg_restore = fetch::pg_restore_for(&manifest, self.opts.pg_bin_dir.as_deref())
            .map_err(anyhow::Error::from);
        let pg_restore = self.step_err("fetch", t, pg_restore)?;
        let work = self.step_err(
            "fetch",
            t,
            fetch::WorkDir::create(&self.opts.work_dir, "restore"),
        )?;
        let r = fetch::fetch(
            self.storage,
            &manifest,
            &pg_restore,
            work.path(),
            self.progress,
            &self.cancel,
        )
        .await;
        let fetched = self.step_err("fetch", t, r)?;
        let globals = if self.opts.with_globals {
            let r = fetch::fetch_globals(self.storage, &manifest).await;
            self.step_err("fetch", t, r)?
        } else {
            None
        };
        self.step_ok(
            "fetch",
            t,
            format!(
                "{} verified (SHA-256 {}), {} TOC entries",
                manifest.object.key,
                manifest.object.sha256,
                fetched.toc.len()
            ),
        );

        // 5. Preflight: can this server take this archive?
        let t = now();
        let r = self.preflight(&manifest, target_major, &fetched.toc).await;
        self.step_err("preflight", t, r)?;
        self.step_ok(
            "preflight",
            t,
            "server version, extensions and roles fit the archive",
        );

        // 6. The target's side of the interlocks.
        let t = now();
        let r = self.target_interlocks(&manifest, target_exists).await;
        let others = self.step_err("interlocks", t, r)?;
        self.step_ok(
            "interlocks",
            t,
            "one restore at a time, migrations and sessions checked",
        );
        self.check_cancel()?;

        // From here on, things change. Sessions first, if the operator asked.
        if target_exists && self.opts.terminate_connections {
            let t = now();
            let r = self.block_and_terminate(&target_db).await;
            let n = self.step_err("sessions", t, r)?;
            self.step_ok(
                "sessions",
                t,
                format!(
                    "new connections blocked, {n} session(s) terminated ({})",
                    others.join(", ")
                ),
            );
        }

        // 7. Safety backup of the current target.
        let mut safety = None;
        if target_exists && self.opts.safety_backup {
            let t = now();
            let r = self.safety_backup().await;
            let id = self.step_err("safety backup", t, r)?;
            self.step_ok("safety backup", t, format!("{id} (tag pre-restore)"));
            safety = Some(id);
        }
        self.check_cancel()?;

        // 8. Globals (roles, tablespaces), when asked: the archive's objects may need them.
        if let Some(sql) = &globals {
            let t = now();
            let r = self.apply_globals(sql).await;
            let kept = self.step_err("globals", t, r)?;
            self.step_ok(
                "globals",
                t,
                if kept.is_empty() {
                    "roles and tablespaces applied".to_string()
                } else {
                    format!(
                        "roles and tablespaces applied; existing ones left as they are: {}",
                        kept.join(", ")
                    )
                },
            );
        }
        self.check_cancel()?;

        // 9. Execute.
        let flags = RestoreFlags {
            jobs: self.opts.jobs,
            with_owner: self.opts.with_owner,
            with_acl: self.opts.with_acl,
            clean: self.opts.strategy == Strategy::Clean,
        };
        let (report, previous) = match (self.opts.strategy, self.opts.in_place || !target_exists) {
            (Strategy::Fresh, false) => {
                self.staged(&manifest, &pg_restore, &fetched, &flags)
                    .await?
            }
            (Strategy::Fresh, true) => (
                self.in_place(&manifest, &pg_restore, &fetched, &flags, target_exists)
                    .await?,
                None,
            ),
            (Strategy::Clean, _) => (
                self.clean(&manifest, &pg_restore, &fetched, &flags).await?,
                None,
            ),
        };
        Ok(self.outcome(
            "ok",
            &manifest,
            plan,
            safety,
            previous,
            Some(report),
            started,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    fn outcome(
        &self,
        result: &str,
        m: &Manifest,
        plan: Vec<String>,
        safety: Option<String>,
        previous: Option<String>,
        integrity: Option<Report>,
        started: Instant,
    ) -> Outcome {
        Outcome {
            result: result.into(),
            backup_id: m.backup_id.clone(),
            target: self.opts.target.redacted(),
            strategy: self.opts.strategy,
            in_place: self.opts.in_place,
            safety_backup: safety,
            previous_database: previous,
            plan,
            integrity,
            duration_seconds: started.elapsed().as_secs_f64(),
        }
    }

    fn plan(&self, m: &Manifest, target_exists: bool) -> Vec<String> {
        let db = self.opts.target.dbname();
        let mut plan = vec![
            format!(
                "download {} and verify SHA-256 {}",
                m.object.key, m.object.sha256
            ),
            "check that pg_restore reads the archive, the server version, extensions and roles"
                .into(),
            "take the restore locks (advisory lock on the server, lock object in the repository)"
                .into(),
        ];
        if self.opts.strategy == Strategy::Clean {
            plan.push(
                "refuse if the target's schema migrations are newer than the backup's".into(),
            );
        }
        if target_exists {
            plan.push(if self.opts.terminate_connections {
                format!("block new connections to {db} and terminate the existing ones")
            } else {
                format!("refuse if other sessions are connected to {db}")
            });
            if self.opts.safety_backup {
                plan.push(format!(
                    "back up the current {db} into the repository, tagged pre-restore"
                ));
            }
        }
        if self.opts.with_globals {
            plan.push(
                "apply the backup's globals: create missing roles and tablespaces, leave existing ones as they are"
                    .into(),
            );
        }
        match (self.opts.strategy, self.opts.in_place || !target_exists) {
            (Strategy::Fresh, false) => {
                plan.push(format!(
                    "create {db}__pgsafe_<time> ({}, {}) and pg_restore into it",
                    m.server.encoding, m.server.lc_collate
                ));
                plan.push("run the integrity check on it; on failure drop it and stop".into());
                plan.push(format!(
                    "swap: rename {db} to {db}__pgsafe_pre_<time>, the new one to {db}"
                ));
            }
            (Strategy::Fresh, true) => {
                if target_exists {
                    plan.push(format!("DROP DATABASE {db}"));
                }
                plan.push(format!(
                    "CREATE DATABASE {db} ({}, {}) and pg_restore into it",
                    m.server.encoding, m.server.lc_collate
                ));
                plan.push("run the integrity check".into());
            }
            (Strategy::Clean, _) => {
                plan.push(format!("pg_restore --clean --if-exists --single-transaction into {db} (not recommended)"));
                plan.push("run the integrity check".into());
            }
        }
        plan
    }

    async fn connect_target(&mut self) -> Result<(u32, bool)> {
        let maint_info = self.opts.target.with_dbname(&self.opts.maintenance_db);
        let client = session::connect(&maint_info).await?;
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::int,
                        (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
                &[],
            )
            .await?;
        let (num, superuser): (i32, bool) = (row.get(0), row.get(1));
        if !superuser {
            return Err(Error::usage(format!(
                "{} is not a superuser; pgsafe restores create, rename and drop databases and end other sessions",
                self.opts.target.user()
            ))
            .hint("restore as a superuser (for example postgres)")
            .into());
        }
        let exists = execute::database_exists(&client, self.opts.target.dbname()).await?;
        self.maint = Some(client);
        Ok(((num / 10000) as u32, exists))
    }

    fn maint(&self) -> &Client {
        self.maint.as_ref().expect("connected")
    }

    async fn preflight(&self, m: &Manifest, target_major: u32, toc: &[toc::Entry]) -> Result<()> {
        let source = m.server.version_num as u32 / 10000;
        if target_major < source && !self.opts.allow_downgrade {
            return Err(Error::refused(
                "server version",
                format!("the target runs PostgreSQL {target_major}, older than the backup's source ({source})"),
            )
            .hint("restore into a server at least as new, or pass --allow-downgrade and expect errors")
            .into());
        }
        let available: Vec<String> = self
            .maint()
            .query("SELECT name::text FROM pg_available_extensions", &[])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let missing: Vec<&str> = m
            .extensions
            .iter()
            .map(|e| e.name.as_str())
            .filter(|e| !available.iter().any(|a| a == e))
            .collect();
        if !missing.is_empty() {
            return Err(Error::refused(
                "extensions",
                format!(
                    "the target server lacks extension(s) {}",
                    missing.join(", ")
                ),
            )
            .hint("install them on the target server (e.g. the postgresql-contrib package) first")
            .into());
        }
        // With globals, the roles come with them (applied just before pg_restore).
        if (self.opts.with_owner || self.opts.with_acl) && !self.opts.with_globals {
            let mut roles: Vec<&str> = toc
                .iter()
                .map(|e| e.owner.as_str())
                .filter(|o| !o.is_empty())
                .collect();
            roles.sort();
            roles.dedup();
            let mut absent = Vec::new();
            for role in roles {
                let exists: bool = self
                    .maint()
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
                        &[&role],
                    )
                    .await?
                    .get(0);
                if !exists {
                    absent.push(role.to_string());
                }
            }
            if !absent.is_empty() {
                return Err(Error::refused("roles", format!("the archive names role(s) the target lacks: {}", absent.join(", ")))
                    .hint("create the roles (pg_dumpall --globals-only) first, or restore without --with-owner/--with-acl")
                    .into());
            }
        }
        Ok(())
    }

    /// Returns the other sessions (allowed through only with --terminate-connections).
    async fn target_interlocks(
        &mut self,
        m: &Manifest,
        target_exists: bool,
    ) -> Result<Vec<String>> {
        let db = self.opts.target.dbname().to_string();
        interlocks::advisory_lock(self.maint(), &db).await?;
        let key = interlocks::repo_lock_key(
            &format!("{}:{}", self.opts.target.host(), self.opts.target.port()),
            &db,
        );
        let info = interlocks::LockInfo {
            target: self.opts.target.redacted(),
            operator: self.record.operator.clone(),
            host: self.record.host.clone(),
            pid: std::process::id(),
            since: Utc::now(),
        };
        interlocks::repo_lock(self.storage, &key, &info).await?;
        self.changes.repo_lock = Some(key);
        if !target_exists {
            return Ok(Vec::new());
        }
        if self.opts.strategy == Strategy::Clean {
            let client = session::connect(&self.opts.target).await?;
            let current = migrations::read(&client, self.opts.migrations_table.as_deref()).await?;
            interlocks::migrations(&current, &m.migrations, self.opts.allow_newer_migrations)?;
        }
        let others = execute::lasting_sessions(self.maint(), &db).await?;
        interlocks::sessions(&db, &others, self.opts.terminate_connections)?;
        Ok(others)
    }

    /// Applies the backup's globals (fetched and checked with the archive) with psql.
    async fn apply_globals(&self, sql: &[u8]) -> Result<Vec<String>> {
        let target_major = crate::pg::session::database_info(self.maint())
            .await?
            .major();
        let psql = crate::pg::tools::find("psql", self.opts.pg_bin_dir.as_deref(), target_major)?;
        let maint_info = self.opts.target.with_dbname(&self.opts.maintenance_db);
        crate::pg::globals::apply(&psql, &maint_info, self.maint(), sql).await
    }

    async fn block_and_terminate(&mut self, db: &str) -> Result<u64> {
        let old = execute::block_connections(self.maint(), db).await?;
        self.changes.connection_limit = Some((db.to_string(), old));
        execute::terminate_sessions(self.maint(), db).await
    }

    async fn safety_backup(&self) -> Result<String> {
        let settings = crate::commands::backup::Settings {
            migrations_table: self.opts.migrations_table.clone(),
            // The safety backup is on the incident's critical path: the fastest zstd level,
            // not the compact default.
            compression: crate::pipeline::Compression::new(
                crate::pipeline::Algorithm::Zstd,
                Some(1),
                None,
            )
            .map_err(Error::usage)?,
            first_part: 8 * 1024 * 1024,
            in_flight: 4,
            dump: crate::pg::dump::DumpOptions::default(),
            globals: false,
            anomaly_threshold: None,
        };
        let ctx = crate::commands::Ctx {
            json: false,
            progress: self.progress,
        };
        let m = crate::commands::backup::backup(
            &self.opts.target,
            self.storage,
            Some(catalog::PRE_RESTORE_TAG),
            self.opts.pg_bin_dir.as_deref(),
            settings,
            ctx,
            &self.cancel,
        )
        .await
        .context("the safety backup failed, so the restore stopped before changing anything")?;
        Ok(m.backup_id)
    }

    async fn restore_into(
        &mut self,
        step: &str,
        db: &str,
        tool: &PgTool,
        archive: &std::path::Path,
        flags: &RestoreFlags,
    ) -> Result<()> {
        let t = now();
        let shown = crate::output::Progress::start(self.progress, |elapsed| {
            format!(
                "pg_restore: running for {}",
                crate::output::duration(elapsed)
            )
        });
        let r =
            execute::pg_restore(tool, &self.opts.target, db, archive, flags, &self.cancel).await;
        drop(shown);
        let warnings = self.step_err(step, t, r)?;
        if !warnings.is_empty() {
            warn!("pg_restore said: {warnings}");
        }
        let detail = if warnings.is_empty() {
            format!("restored into {db}")
        } else {
            format!("restored into {db}; pg_restore said: {warnings}")
        };
        self.step_ok(step, t, detail);
        Ok(())
    }

    async fn integrity(&mut self, db: &str, m: &Manifest, toc: &[toc::Entry]) -> Result<Report> {
        let t = now();
        let r = async {
            let client = session::connect(&self.opts.target.with_dbname(db)).await?;
            integrity::run(&client, db, m, toc, &self.opts.smoke_sql).await
        }
        .await;
        let report = self.step_err("integrity", t, r)?;
        if report.ok {
            self.step_ok(
                "integrity",
                t,
                format!("{} checks passed on {db}", report.checks.len()),
            );
            Ok(report)
        } else {
            let failed: Vec<String> = report
                .failures()
                .map(|c| format!("{}: {}", c.check, c.detail))
                .collect();
            self.record
                .step("integrity", t, "failed", failed.join("; "));
            eprint!("{}", report.table());
            Err(Error::integrity(format!(
                "the integrity check failed on {db}: {}",
                failed.join("; ")
            ))
            .into())
        }
    }

    /// Strategy A, staged: restore next to the live database, check, then swap.
    async fn staged(
        &mut self,
        m: &Manifest,
        tool: &PgTool,
        fetched: &fetch::Fetched,
        flags: &RestoreFlags,
    ) -> Result<(Report, Option<String>)> {
        let db = self.opts.target.dbname().to_string();
        let stamp = Utc::now().format("%Y%m%d%H%M%S").to_string();
        let staging = execute::derived_name(&db, &format!("__pgsafe_{stamp}"));
        let previous = execute::derived_name(&db, &format!("__pgsafe_pre_{stamp}"));
        let t = now();
        let owner = execute::database_owner(self.maint(), &db).await?;
        let r = execute::create_database(self.maint(), &staging, m, owner.as_deref()).await;
        self.step_err("create", t, r)?;
        self.changes.staging = Some(staging.clone());
        self.step_ok("create", t, format!("{staging} created"));

        self.restore_into("pg_restore", &staging, tool, &fetched.archive, flags)
            .await?;
        self.check_cancel()?;
        let report = self.integrity(&staging, m, &fetched.toc).await?;
        self.check_cancel()?;

        let t = now();
        let r = async {
            let others = execute::lasting_sessions(self.maint(), &db).await?;
            if !self.opts.terminate_connections {
                interlocks::sessions(&db, &others, false)?;
            }
            // Also ends autovacuum workers, which would make the rename fail.
            execute::terminate_sessions(self.maint(), &db).await?;
            if let Some((_, limit)) = &self.changes.connection_limit {
                execute::set_connection_limit(self.maint(), &staging, *limit).await?;
            }
            let state = execute::database_state(self.maint(), &db).await?;
            execute::apply_database_state(self.maint(), &staging, &state).await?;
            execute::swap(self.maint(), &db, &previous, &staging).await
        }
        .await;
        self.step_err("swap", t, r)?;
        self.changes.staging = None;
        if let Some((name, _)) = self.changes.connection_limit.as_mut() {
            *name = previous.clone();
        }
        self.step_ok(
            "swap",
            t,
            format!("{db} is the restored database; the previous one is kept as {previous}"),
        );
        Ok((report, Some(previous)))
    }

    /// Strategy A in place: the runbook's DROP, CREATE, pg_restore. Once the database is dropped,
    /// a signal no longer stops the restore: stopping would leave it half restored.
    async fn in_place(
        &mut self,
        m: &Manifest,
        tool: &PgTool,
        fetched: &fetch::Fetched,
        flags: &RestoreFlags,
        exists: bool,
    ) -> Result<Report> {
        let db = self.opts.target.dbname().to_string();
        let t = now();
        let owner = if exists {
            execute::database_owner(self.maint(), &db).await?
        } else {
            None
        };
        let state = if exists {
            execute::database_state(self.maint(), &db).await?
        } else {
            execute::DatabaseState::default()
        };
        if exists {
            execute::drop_database(self.maint(), &db).await?;
        }
        let r = execute::create_database(self.maint(), &db, m, owner.as_deref()).await;
        self.step_err("create", t, r)?;
        // The new database starts unblocked: give it the old one's connection limit.
        if let Some((_, limit)) = self.changes.connection_limit.take() {
            execute::set_connection_limit(self.maint(), &db, limit).await?;
        }
        execute::apply_database_state(self.maint(), &db, &state).await?;
        self.step_ok(
            "create",
            t,
            if exists {
                format!("{db} dropped and created empty")
            } else {
                format!("{db} created")
            },
        );
        let keep_going = std::mem::replace(&mut self.cancel, CancellationToken::new());
        let r = self
            .restore_into("pg_restore", &db, tool, &fetched.archive, flags)
            .await;
        self.cancel = keep_going;
        r?;
        self.integrity(&db, m, &fetched.toc).await
    }

    /// Strategy B: pg_restore --clean in one transaction; a failure rolls back.
    async fn clean(
        &mut self,
        m: &Manifest,
        tool: &PgTool,
        fetched: &fetch::Fetched,
        flags: &RestoreFlags,
    ) -> Result<Report> {
        let db = self.opts.target.dbname().to_string();
        self.restore_into("pg_restore", &db, tool, &fetched.archive, flags)
            .await?;
        self.integrity(&db, m, &fetched.toc).await
    }

    /// Puts back what this run changed: the half-restored copy, the connection limit, the lock.
    async fn cleanup(&mut self) {
        if let Some(client) = self.maint.as_ref() {
            if let Some(staging) = self.changes.staging.take() {
                match execute::drop_database(client, &staging).await {
                    Ok(()) => {
                        info!("dropped the unfinished copy {staging}; the target was not touched")
                    }
                    Err(e) => warn!("could not drop {staging}: {e:#}; drop it by hand"),
                }
            }
            if let Some((db, limit)) = self.changes.connection_limit.take() {
                if let Err(e) = execute::set_connection_limit(client, &db, limit).await {
                    warn!("could not restore the connection limit of {db} to {limit}: {e:#}");
                }
            }
        }
        if let Some(key) = self.changes.repo_lock.take() {
            if let Err(e) = self.storage.delete(&key).await {
                warn!("could not remove the restore lock {key}: {e:#}");
            }
        }
        // The advisory lock ends with the maintenance session.
        self.maint = None;
    }
}

/// `restore --undo`: swaps the newest database kept aside by a staged restore back into place.
/// The restored one is kept as `<db>__pgsafe_undone_<time>`.
pub async fn undo(
    opts: Options,
    storage: &dyn Storage,
    cancel: CancellationToken,
) -> Result<Outcome> {
    let started = Instant::now();
    let mut r = Restore::new(opts, storage, cancel, crate::output::ProgressMode::Off);
    r.record.action = "restore --undo".into();
    r.record.strategy = "undo".into();
    let result = r.undo_inner(started).await;
    r.finish(result).await
}

impl Restore<'_> {
    async fn undo_inner(&mut self, started: Instant) -> Result<Outcome> {
        let db = self.opts.target.dbname().to_string();
        let t = now();
        let r = (|| -> Result<()> {
            interlocks::reason(self.opts.reason.as_deref())?;
            interlocks::protected(&db, &self.opts.protected, self.opts.allow_protected)?;
            interlocks::confirmation(&db, self.opts.confirm.as_deref())?;
            Ok(())
        })();
        self.step_err("decision", t, r)?;
        self.step_ok("decision", t, "reason recorded, target confirmed");
        let t = now();
        let r = self.connect_target().await;
        self.step_err("connect", t, r)?;
        // Names are `<db, shortened to fit>__pgsafe_pre_<14 digits>`.
        let probe = execute::derived_name(&db, "__pgsafe_pre_00000000000000");
        let prefix = probe[..probe.len() - 14].to_string();
        let kept: Option<String> = self
            .maint()
            .query_opt(
                "SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname DESC LIMIT 1",
                &[&prefix],
            )
            .await?
            .map(|r| r.get(0));
        let Some(previous) = kept else {
            let e: anyhow::Error = Error::failed(format!("no database kept aside by a staged restore of {db} (looked for {prefix}*)"))
                .hint("only a staged Strategy A restore keeps the previous database; otherwise restore the pre-restore safety backup")
                .into();
            return self.step_err("find previous", t, Err(e));
        };
        self.step_ok("find previous", t, previous.clone());
        let t = now();
        let r = async {
            interlocks::advisory_lock(self.maint(), &db).await?;
            let others = execute::lasting_sessions(self.maint(), &db).await?;
            interlocks::sessions(&db, &others, self.opts.terminate_connections)?;
            execute::terminate_sessions(self.maint(), &db).await?;
            let stamp = Utc::now().format("%Y%m%d%H%M%S").to_string();
            let undone = execute::derived_name(&db, &format!("__pgsafe_undone_{stamp}"));
            execute::swap(self.maint(), &db, &undone, &previous).await?;
            Ok::<_, anyhow::Error>(undone)
        }
        .await;
        let undone = self.step_err("swap back", t, r)?;
        self.step_ok(
            "swap back",
            t,
            format!("{previous} is {db} again; the restored one is kept as {undone}"),
        );
        Ok(Outcome {
            result: "ok".into(),
            backup_id: String::new(),
            target: self.opts.target.redacted(),
            strategy: Strategy::Fresh,
            in_place: false,
            safety_backup: None,
            previous_database: Some(undone),
            plan: vec![format!("swap {previous} back into {db}")],
            integrity: None,
            duration_seconds: started.elapsed().as_secs_f64(),
        })
    }
}
