//! `pgsafe schedule`: runs the configured jobs on their cron expressions, in the foreground, for
//! containers and servers.
//!
//! Each run is a child `pgsafe` process (`backup`, `prune --yes` or `verify`) with the same
//! configuration file: a crash or a leak in one run cannot take the scheduler down, and each run
//! notifies and updates the metrics file itself. Jobs run one at a time (a restore drill never
//! competes with a backup for the server); one job's failure does not stop the others. SIGTERM
//! or Ctrl-C is passed on to the running job, which aborts cleanly (no half-written backup),
//! and the scheduler then exits.

use std::process::Stdio;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::cli::{OutputArgs, ScheduleArgs};
use crate::config::{Config, Job, JobKind};
use crate::error::{exit, Error};
use crate::schedule::{parse_cron, Cron};

pub async fn run(
    args: ScheduleArgs,
    config: &Config,
    output: &OutputArgs,
    cancel: CancellationToken,
) -> Result<()> {
    if config.schedule.is_empty() {
        return Err(Error::usage("the configuration schedules no job")
            .hint("add [[schedule]] entries (job, cron) to the configuration file; see the README")
            .into());
    }
    let Some(path) = config.path.clone() else {
        return Err(Error::usage("pgsafe schedule needs a configuration file").into());
    };
    let jobs: Vec<(Job, Cron)> = config
        .schedule
        .iter()
        .map(|j| {
            parse_cron(&j.cron)
                .map(|c| (j.clone(), c))
                .map_err(Error::usage)
        })
        .collect::<Result<_, _>>()?;
    let runner = Runner {
        config,
        config_path: path,
        output,
    };

    if args.once {
        let mut failed = 0;
        for (job, _) in &jobs {
            if cancel.is_cancelled() {
                return Err(Error::interrupted().into());
            }
            if runner.run(job, &cancel).await != exit::OK {
                failed += 1;
            }
        }
        if cancel.is_cancelled() {
            return Err(Error::interrupted().into());
        }
        return match failed {
            0 => Ok(()),
            n => Err(Error::failed(format!("{n} of {} jobs failed", jobs.len())).into()),
        };
    }

    info!(
        "scheduler started with {} job(s) from {}",
        jobs.len(),
        runner.config_path.display()
    );
    let mut next: Vec<Option<DateTime<Utc>>> =
        jobs.iter().map(|(_, c)| c.next_after(Utc::now())).collect();
    for ((job, _), n) in jobs.iter().zip(&next) {
        info!(
            "job {:?} ({}): next run {}",
            job.name(),
            job.cron,
            n.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into())
        );
    }
    loop {
        let Some((i, when)) = next
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (i, t)))
            .min_by_key(|(_, t)| *t)
        else {
            info!("no job will run again; the scheduler stops");
            return Ok(());
        };
        let wait = (when - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = cancel.cancelled() => {
                info!("signal received while idle; the scheduler stops");
                return Ok(());
            }
        }
        let (job, cron) = &jobs[i];
        runner.run(job, &cancel).await;
        if cancel.is_cancelled() {
            info!("signal received; the running job was stopped, the scheduler stops");
            return Err(Error::interrupted().into());
        }
        // Firings missed while the job ran are skipped, not queued.
        next[i] = cron.next_after(Utc::now().max(when));
    }
}

struct Runner<'a> {
    config: &'a Config,
    config_path: std::path::PathBuf,
    output: &'a OutputArgs,
}

impl Runner<'_> {
    /// The `pgsafe` invocations one job is made of.
    fn invocations(&self, job: &Job) -> Result<Vec<Vec<String>>> {
        let env = |k: &str| std::env::var(k).ok();
        let names: Vec<String> = if job.databases.is_empty() {
            self.config.databases.keys().cloned().collect()
        } else {
            job.databases.clone()
        };
        // Backups use the configuration's names; prune and verify the databases' real names.
        let real = |n: &String| -> Result<String> {
            Ok(self.config.database_conn(n, &env)?.dbname().to_string())
        };
        Ok(match job.job {
            JobKind::Backup if job.databases.is_empty() => {
                vec![vec!["backup".into(), "--all".into()]]
            }
            JobKind::Backup => vec![std::iter::once("backup".to_string())
                .chain(
                    names
                        .iter()
                        .flat_map(|n| ["--database".to_string(), n.clone()]),
                )
                .collect()],
            JobKind::Prune if job.databases.is_empty() => {
                vec![vec!["prune".into(), "--yes".into()]]
            }
            JobKind::Prune => names
                .iter()
                .map(|n| {
                    Ok(vec![
                        "prune".into(),
                        "--yes".into(),
                        "--database".into(),
                        real(n)?,
                    ])
                })
                .collect::<Result<_>>()?,
            JobKind::Verify => names
                .iter()
                .map(|n| {
                    let mut a = vec![
                        "verify".into(),
                        "latest".into(),
                        "--database".into(),
                        real(n)?,
                    ];
                    if job.restore {
                        a.push("--drill".into());
                    }
                    Ok(a)
                })
                .collect::<Result<_>>()?,
        })
    }

    /// Runs one job; returns its exit code (the worst of its invocations).
    async fn run(&self, job: &Job, cancel: &CancellationToken) -> i32 {
        let name = job.name();
        let invocations = match self.invocations(job) {
            Ok(v) if !v.is_empty() => v,
            Ok(_) => {
                warn!("job {name:?} has no database to work on");
                return exit::USAGE;
            }
            Err(e) => {
                error!("job {name:?} cannot start: {e:#}");
                return exit::USAGE;
            }
        };
        let mut worst = exit::OK;
        for args in invocations {
            info!("job {name:?}: running pgsafe {}", args.join(" "));
            let code = match self.spawn(job, &args, cancel).await {
                Ok(code) => code,
                Err(e) => {
                    error!("job {name:?} could not run: {e:#}");
                    exit::FAILED
                }
            };
            if code == exit::OK {
                info!("job {name:?}: pgsafe {} succeeded", args[0]);
            } else {
                error!(
                    "job {name:?}: pgsafe {} failed with exit code {code}",
                    args[0]
                );
            }
            if worst == exit::OK || code == exit::INTERRUPTED {
                worst = code;
            }
            if cancel.is_cancelled() {
                break;
            }
        }
        worst
    }

    async fn spawn(&self, job: &Job, args: &[String], cancel: &CancellationToken) -> Result<i32> {
        let exe = std::env::current_exe().context("cannot find the pgsafe executable")?;
        let mut cmd = tokio::process::Command::new(exe);
        cmd.arg("--config")
            .arg(&self.config_path)
            .arg("--no-progress")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            // Its own process group: the terminal's Ctrl-C reaches it only through us.
            .process_group(0)
            .kill_on_drop(true);
        for _ in 0..self.output.verbose {
            cmd.arg("-v");
        }
        if self.output.quiet {
            cmd.arg("--quiet");
        }
        cmd.env("PGSAFE_JOB_NAME", job.name());
        if let Some(hc) = &job.healthchecks_url {
            cmd.env("PGSAFE_HEALTHCHECKS_URL", hc);
        }
        let mut child = cmd.spawn().context("cannot start a pgsafe job")?;
        let pid = child.id().map(|p| Pid::from_raw(p as i32));
        let status = tokio::select! {
            s = child.wait() => s?,
            _ = cancel.cancelled() => {
                if let Some(pid) = pid {
                    info!("passing the signal on to the running job (pid {pid})");
                    let _ = kill(pid, Signal::SIGTERM);
                }
                child.wait().await?
            }
        };
        Ok(status.code().unwrap_or(exit::FAILED))
    }
}
