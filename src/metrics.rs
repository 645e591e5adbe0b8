//! A Prometheus text file (node_exporter's textfile collector format) with, per database, the
//! last successful backup and verification: time, duration and size. The figures come from the
//! repository's manifests and verification records, so the file is right whoever ran the job;
//! each job's last outcome is added from the previous file. Written atomically.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::catalog::Listing;

/// The outcome of one job run, kept across rewrites of the file.
pub struct JobRun {
    pub job: String,
    pub ok: bool,
    pub at: DateTime<Utc>,
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the file's text.
pub fn render(listing: &Listing, jobs: &BTreeMap<String, (bool, i64)>) -> String {
    #[derive(Default)]
    struct Db {
        count: u64,
        last: Option<(i64, f64, u64, u64, i64)>,
        verified: Option<(i64, f64)>,
    }
    let mut dbs: BTreeMap<&str, Db> = BTreeMap::new();
    for m in &listing.backups {
        let d = dbs.entry(&m.database).or_default();
        d.count += 1;
        let duration = (m.finished_at - m.started_at).num_milliseconds() as f64 / 1000.0;
        let t = m.finished_at.timestamp();
        if d.last.is_none_or(|l| l.0 <= t) {
            d.last = Some((t, duration, m.object.bytes, m.archive.bytes, m.total_rows()));
        }
        if let Some(v) = listing.verified(&m.backup_id) {
            let vt = v.at.timestamp();
            if d.verified.is_none_or(|x| x.0 <= vt) {
                d.verified = Some((vt, v.duration_seconds));
            }
        }
    }
    let mut out = String::new();
    let mut family = |name: &str, help: &str, kind: &str, rows: Vec<(String, String)>| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let per_db = |f: &dyn Fn(&Db) -> Option<String>| -> Vec<(String, String)> {
        dbs.iter()
            .filter_map(|(name, d)| f(d).map(|v| (format!("database=\"{}\"", label(name)), v)))
            .collect()
    };
    family(
        "pgsafe_backups",
        "Complete backups in the repository.",
        "gauge",
        per_db(&|d| Some(d.count.to_string())),
    );
    family(
        "pgsafe_last_backup_timestamp_seconds",
        "When the newest complete backup finished (Unix time).",
        "gauge",
        per_db(&|d| d.last.map(|l| l.0.to_string())),
    );
    family(
        "pgsafe_last_backup_duration_seconds",
        "How long the newest complete backup took.",
        "gauge",
        per_db(&|d| d.last.map(|l| format!("{:.3}", l.1))),
    );
    family(
        "pgsafe_last_backup_size_bytes",
        "Stored size of the newest complete backup.",
        "gauge",
        per_db(&|d| d.last.map(|l| l.2.to_string())),
    );
    family(
        "pgsafe_last_backup_raw_bytes",
        "Uncompressed archive size of the newest complete backup.",
        "gauge",
        per_db(&|d| d.last.map(|l| l.3.to_string())),
    );
    family(
        "pgsafe_last_backup_rows",
        "Total row count of the newest complete backup.",
        "gauge",
        per_db(&|d| d.last.map(|l| l.4.to_string())),
    );
    family(
        "pgsafe_last_verify_timestamp_seconds",
        "When a backup of the database was last verified successfully (Unix time).",
        "gauge",
        per_db(&|d| d.verified.map(|v| v.0.to_string())),
    );
    family(
        "pgsafe_last_verify_duration_seconds",
        "How long that verification took.",
        "gauge",
        per_db(&|d| d.verified.map(|v| format!("{:.3}", v.1))),
    );
    let job_rows = |f: &dyn Fn(&(bool, i64)) -> String| -> Vec<(String, String)> {
        jobs.iter()
            .map(|(job, v)| (format!("job=\"{}\"", label(job)), f(v)))
            .collect()
    };
    family(
        "pgsafe_job_last_success",
        "1 when the job's last run succeeded, 0 when it failed.",
        "gauge",
        job_rows(&|v| u8::from(v.0).to_string()),
    );
    family(
        "pgsafe_job_last_run_timestamp_seconds",
        "When the job last ran (Unix time).",
        "gauge",
        job_rows(&|v| v.1.to_string()),
    );
    out
}

/// The job outcomes an earlier file recorded.
fn previous_jobs(text: &str) -> BTreeMap<String, (bool, i64)> {
    let mut jobs: BTreeMap<String, (bool, i64)> = BTreeMap::new();
    for line in text.lines() {
        let parse = |prefix: &str| -> Option<(String, String)> {
            let rest = line.strip_prefix(prefix)?.strip_prefix("{job=\"")?;
            let (job, value) = rest.split_once("\"} ")?;
            Some((job.to_string(), value.trim().to_string()))
        };
        if let Some((job, v)) = parse("pgsafe_job_last_success") {
            jobs.entry(job).or_default().0 = v == "1";
        } else if let Some((job, v)) = parse("pgsafe_job_last_run_timestamp_seconds") {
            jobs.entry(job).or_default().1 = v.parse().unwrap_or(0);
        }
    }
    jobs
}

/// Rewrites the file from the repository's listing, recording `run` as its job's last outcome.
pub fn write(path: &Path, listing: &Listing, run: Option<JobRun>) -> Result<()> {
    let mut jobs = std::fs::read_to_string(path)
        .map(|t| previous_jobs(&t))
        .unwrap_or_default();
    if let Some(r) = run {
        jobs.insert(r.job, (r.ok, r.at.timestamp()));
    }
    let text = render(listing, &jobs);
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_outcomes_survive_a_rewrite() {
        let mut jobs = BTreeMap::new();
        jobs.insert("backup".to_string(), (true, 1_700_000_000));
        jobs.insert("verify".to_string(), (false, 1_700_000_100));
        let text = render(&Listing::default(), &jobs);
        assert!(text.contains("pgsafe_job_last_success{job=\"verify\"} 0"));
        assert_eq!(previous_jobs(&text), jobs);
    }
}
