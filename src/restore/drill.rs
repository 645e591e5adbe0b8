//! A restore drill: restore a fetched backup into a scratch database on a staging server, run
//! the integrity check, and drop the scratch database whatever happened (failure, Ctrl-C).

use std::time::Instant;

use anyhow::{Context, Result};
use chrono::Utc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::execute::{self, RestoreFlags};
use super::fetch::Fetched;
use super::integrity::{self, Report};
use crate::catalog::verification::Step;
use crate::catalog::Manifest;
use crate::error::Error;
use crate::output::{Progress, ProgressMode};
use crate::pg::{session, ConnInfo, PgTool};

pub struct Drill<'a> {
    /// The staging server. Its URL's database (usually `postgres`) is where pgsafe connects to
    /// create and drop the scratch database; nothing in it is touched.
    pub server: &'a ConnInfo,
    pub jobs: u32,
    pub smoke_sql: &'a [String],
    pub progress: ProgressMode,
}

/// `pgsafe_verify_<database>_<UTC time>_<random>`: recognisable (whose drill left it, and
/// when), unique, and within PostgreSQL's 63-byte limit.
pub fn scratch_name(database: &str) -> String {
    let db: String = crate::catalog::id::slug(database)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(24)
        .collect();
    format!(
        "{SCRATCH_PREFIX}{db}_{}_{}",
        Utc::now().format("%Y%m%dT%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    )
}

/// Every scratch database's name starts with this.
pub const SCRATCH_PREFIX: &str = "pgsafe_verify_";

impl Drill<'_> {
    /// Runs the drill into `scratch`, appending each step to `steps`. The scratch database is
    /// dropped before this returns, on every path.
    pub async fn run(
        &self,
        m: &Manifest,
        pg_restore: &PgTool,
        fetched: &Fetched,
        scratch: &str,
        steps: &mut Vec<Step>,
        cancel: &CancellationToken,
    ) -> Result<Report> {
        let maint_info = self.server;
        let maint = session::connect(maint_info)
            .await
            .context("cannot connect to the staging server")?;
        let facts = session::database_info(&maint).await?;
        let source_major = m.server.version_num as u32 / 10000;
        if facts.major() < source_major {
            return Err(Error::failed(format!(
                "the staging server runs PostgreSQL {}, older than the backup's source ({})",
                facts.server_version, m.server.version
            ))
            .hint("drill on a staging server at least as new as production")
            .into());
        }
        let t = Instant::now();
        let created = execute::create_database(&maint, scratch, m, None).await;
        steps.push(step("create scratch database", created.is_ok(), t));
        created?;
        info!("restoring {} into scratch database {scratch}", m.backup_id);
        let outcome = self
            .restore_and_check(m, pg_restore, fetched, scratch, steps, cancel)
            .await;
        let t = Instant::now();
        // A fresh session: the drop must happen even when the drill was interrupted.
        let dropped = match session::connect(maint_info).await {
            Ok(c) => execute::drop_database(&c, scratch).await,
            Err(e) => Err(e),
        };
        steps.push(step("drop scratch database", dropped.is_ok(), t));
        if let Err(e) = &dropped {
            warn!("could not drop the scratch database {scratch}: {e:#}; drop it by hand");
        }
        let report = outcome?;
        dropped.with_context(|| format!("the scratch database {scratch} could not be dropped"))?;
        Ok(report)
    }

    async fn restore_and_check(
        &self,
        m: &Manifest,
        pg_restore: &PgTool,
        fetched: &Fetched,
        scratch: &str,
        steps: &mut Vec<Step>,
        cancel: &CancellationToken,
    ) -> Result<Report> {
        let t = Instant::now();
        let flags = RestoreFlags {
            jobs: self.jobs,
            with_owner: false,
            with_acl: false,
            clean: false,
        };
        let shown = Progress::start(self.progress, |elapsed| {
            format!(
                "pg_restore: running for {}",
                crate::output::duration(elapsed)
            )
        });
        let restored = execute::pg_restore(
            pg_restore,
            self.server,
            scratch,
            &fetched.archive,
            &flags,
            cancel,
        )
        .await;
        drop(shown);
        steps.push(step("pg_restore", restored.is_ok(), t));
        let warnings = restored?;
        if !warnings.is_empty() {
            warn!("pg_restore said: {warnings}");
        }
        if cancel.is_cancelled() {
            return Err(Error::interrupted().into());
        }
        let t = Instant::now();
        let checked = async {
            let client = session::connect(&self.server.with_dbname(scratch)).await?;
            tokio::select! {
                r = integrity::run(&client, scratch, m, &fetched.toc, self.smoke_sql) => r,
                _ = cancel.cancelled() => Err(Error::interrupted().into()),
            }
        }
        .await;
        steps.push(step(
            "integrity check",
            checked.as_ref().is_ok_and(|r| r.ok),
            t,
        ));
        checked
    }
}

fn step(name: &str, ok: bool, since: Instant) -> Step {
    Step {
        step: name.to_string(),
        ok,
        seconds: since.elapsed().as_secs_f64(),
    }
}
