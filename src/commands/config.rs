//! `pgsafe config check`: the effective configuration (flags > environment > file), secrets
//! redacted, and what would stop an unattended run (unset variables, unreadable URLs).

use anyhow::Result;
use chrono::Utc;
use serde::Serialize;

use super::{print_json, repo_settings, Ctx};
use crate::catalog::retention::Policy;
use crate::cli::ConfigCheckArgs;
use crate::config::{redact_url, Config};
use crate::error::Error;
use crate::storage::RepoUrl;

#[derive(Debug, Serialize)]
struct Effective {
    file: Option<String>,
    repository: Repository,
    backup: Backup,
    retention: String,
    databases: Vec<Database>,
    verify_restore_to: Option<String>,
    notifications: Notifications,
    schedule: Vec<Job>,
    problems: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Repository {
    url: String,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_force_path_style: bool,
}

#[derive(Debug, Serialize)]
struct Backup {
    compression: String,
    compression_level: Option<i32>,
    globals: bool,
    anomaly_threshold_percent: f64,
}

#[derive(Debug, Serialize)]
struct Database {
    name: String,
    /// The connection, password redacted (or where it comes from).
    url: String,
    protected: bool,
    smoke_checks: usize,
    retention: String,
}

#[derive(Debug, Serialize)]
struct Notifications {
    webhook_url: Option<String>,
    webhook_on: String,
    healthchecks_url: Option<String>,
    metrics_file: Option<String>,
}

#[derive(Debug, Serialize)]
struct Job {
    name: String,
    job: String,
    cron: String,
    next_run: Option<String>,
    databases: Vec<String>,
}

pub async fn check(args: ConfigCheckArgs, config: &Config, ctx: Ctx) -> Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    let mut problems = Vec::new();
    let (url, s3) = repo_settings(&args.repo, config)?;
    let repository = Repository {
        url: match &url {
            RepoUrl::Local(p) => p.display().to_string(),
            RepoUrl::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        },
        s3_endpoint: s3.endpoint.as_deref().map(redact_url),
        s3_region: s3.region.clone(),
        s3_force_path_style: s3.force_path_style,
    };
    let b = &config.backup;
    let backup = Backup {
        compression: b.compression.clone().unwrap_or_else(|| "zstd".into()),
        compression_level: b.compression_level,
        globals: b.globals,
        anomaly_threshold_percent: b
            .anomaly_threshold_percent
            .unwrap_or(super::backup::DEFAULT_ANOMALY_THRESHOLD),
    };
    let describe = |p: &Policy| {
        let mut d = p.describe();
        if p.prune_tagged {
            d.push_str(", prune tagged");
        }
        if p.prune_pre_restore {
            d.push_str(", prune pre-restore");
        }
        d
    };
    let mut databases = Vec::new();
    for (name, d) in &config.databases {
        let url = match config.database_conn(name, &env) {
            Ok(c) => match &d.url_env {
                Some(var) => format!("${var} = {}", c.redacted()),
                None => c.redacted(),
            },
            Err(e) => {
                problems.push(format!("database {name}: {}", e.message));
                match &d.url_env {
                    Some(var) => format!("${var} (not set)"),
                    None => "(invalid URL, not shown)".into(),
                }
            }
        };
        databases.push(Database {
            name: name.clone(),
            url,
            protected: d.protected,
            smoke_checks: d.smoke_sql.len(),
            retention: describe(&config.policy_for(name)),
        });
    }
    let verify_restore_to = match config.restore_to(&env) {
        Ok(u) => u.as_deref().map(redact_url),
        Err(e) => {
            problems.push(e.message.clone());
            None
        }
    };
    let n = &config.notifications;
    let notifications = Notifications {
        webhook_url: n.webhook_url.as_deref().map(redact_url),
        webhook_on: n.webhook_on.clone().unwrap_or_else(|| "always".into()),
        healthchecks_url: n.healthchecks_url.as_deref().map(redact_url),
        metrics_file: n.metrics_file.as_ref().map(|p| p.display().to_string()),
    };
    let now = Utc::now();
    let mut schedule = Vec::new();
    for job in &config.schedule {
        let cron = crate::schedule::parse_cron(&job.cron).map_err(Error::usage)?;
        if job.restore && verify_restore_to.is_none() {
            problems.push(format!(
                "schedule {:?} drills a restore, but [verify] names no staging server",
                job.name()
            ));
        }
        schedule.push(Job {
            name: job.name(),
            job: format!("{:?}", job.job).to_lowercase(),
            cron: job.cron.clone(),
            next_run: cron
                .next_after(now)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            databases: job.databases.clone(),
        });
    }
    let effective = Effective {
        file: config.path.as_ref().map(|p| p.display().to_string()),
        repository,
        backup,
        retention: describe(&config.retention),
        databases,
        verify_restore_to,
        notifications,
        schedule,
        problems,
    };
    if ctx.json {
        print_json(&effective)?;
    } else {
        print_human(&effective);
    }
    if effective.problems.is_empty() {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "the configuration has {} problem(s): {}",
            effective.problems.len(),
            effective.problems.join("; ")
        ))
        .into())
    }
}

fn print_human(e: &Effective) {
    println!(
        "configuration  {}",
        e.file
            .as_deref()
            .unwrap_or("(no file: defaults, flags and environment)")
    );
    println!("repository     {}", e.repository.url);
    if let Some(ep) = &e.repository.s3_endpoint {
        println!(
            "  s3 endpoint  {ep} (region {}, path-style {})",
            e.repository.s3_region.as_deref().unwrap_or("default"),
            e.repository.s3_force_path_style
        );
    }
    println!(
        "backup         {} level {}, globals {}, anomaly threshold {}%",
        e.backup.compression,
        e.backup
            .compression_level
            .map(|l| l.to_string())
            .unwrap_or_else(|| "default".into()),
        e.backup.globals,
        e.backup.anomaly_threshold_percent
    );
    println!("retention      {}", e.retention);
    for d in &e.databases {
        println!(
            "database       {}: {}{}, {} smoke check(s), retention {}",
            d.name,
            d.url,
            if d.protected { ", protected" } else { "" },
            d.smoke_checks,
            d.retention
        );
    }
    if let Some(s) = &e.verify_restore_to {
        println!("verify         restore drills into {s}");
    }
    let n = &e.notifications;
    if let Some(w) = &n.webhook_url {
        println!("webhook        {w} (on {})", n.webhook_on);
    }
    if let Some(h) = &n.healthchecks_url {
        println!("healthchecks   {h}");
    }
    if let Some(m) = &n.metrics_file {
        println!("metrics file   {m}");
    }
    for j in &e.schedule {
        println!(
            "schedule       {} at \"{}\" (next {})",
            j.name,
            j.cron,
            j.next_run.as_deref().unwrap_or("never")
        );
    }
    for p in &e.problems {
        println!("PROBLEM        {p}");
    }
}
