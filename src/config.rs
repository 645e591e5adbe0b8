//! The configuration file (TOML): databases, repository, backup settings, retention, smoke
//! checks, schedule and notifications. Flags override the environment, which overrides the file;
//! unknown keys are rejected with their name. Secrets (database URLs with passwords, webhook
//! tokens) are only ever shown redacted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::catalog::retention::Policy;
use crate::error::Error;
use crate::pg::ConnInfo;

/// The whole file. Every table is optional; an absent file is an empty configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub repository: Repository,
    #[serde(default)]
    pub backup: BackupConfig,
    #[serde(default)]
    pub retention: Policy,
    #[serde(default)]
    pub verify: VerifyConfig,
    #[serde(default)]
    pub notifications: Notifications,
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseConfig>,
    #[serde(default)]
    pub schedule: Vec<Job>,
    /// Where the file was read from (not a key of the file).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    /// `s3://bucket/prefix`, `file:///path` or a directory.
    pub url: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    #[serde(default)]
    pub s3_force_path_style: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// `zstd`, `gzip` or `none`.
    pub compression: Option<String>,
    pub compression_level: Option<i32>,
    pub compression_threads: Option<u32>,
    /// Also store the cluster's roles and tablespaces (`pg_dumpall --globals-only`).
    #[serde(default)]
    pub globals: bool,
    /// Flag a backup whose raw size or row count fell by more than this percentage against the
    /// previous backup of the same database [default: 50].
    pub anomaly_threshold_percent: Option<f64>,
    /// A migration table beyond the well-known ones (`table:column`).
    pub migrations_table: Option<String>,
    pub pg_bin_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// The staging server restore drills use (a libpq URL)...
    pub restore_to: Option<String>,
    /// ...or the name of the environment variable that holds it.
    pub restore_to_env: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Notifications {
    /// POSTed a JSON body after every backup, prune and verify, success or failure.
    pub webhook_url: Option<String>,
    /// Healthchecks-style base URL: pinged at `/start`, on success, and at `/fail`.
    pub healthchecks_url: Option<String>,
    /// `always` (default) or `failure`: when the webhook is called.
    pub webhook_on: Option<String>,
    /// A Prometheus text file rewritten after every backup and verify.
    pub metrics_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The database's libpq URL...
    pub url: Option<String>,
    /// ...or the name of the environment variable that holds it.
    pub url_env: Option<String>,
    /// Restores over it also need --allow-protected.
    #[serde(default)]
    pub protected: bool,
    /// SQL that must return true after a restore or a restore drill.
    #[serde(default)]
    pub smoke_sql: Vec<String>,
    /// Replaces the global `[retention]` policy for this database.
    pub retention: Option<Policy>,
}

/// One scheduled job: `[[schedule]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// A name for logs and notifications [default: the kind].
    pub name: Option<String>,
    /// `backup`, `prune` or `verify`.
    pub job: JobKind,
    /// Cron expression: 6 fields with seconds (`0 0 3 * * *`) or the classic 5 (`0 3 * * *`).
    pub cron: String,
    /// The configured databases this job covers [default: all of them].
    #[serde(default)]
    pub databases: Vec<String>,
    /// verify only: restore into the staging server of `[verify]` (a restore drill).
    #[serde(default)]
    pub restore: bool,
    /// A healthchecks URL of this job's own.
    pub healthchecks_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Backup,
    Prune,
    Verify,
}

impl Job {
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            format!("{:?}", self.job).to_lowercase()
                + &if self.databases.is_empty() {
                    String::new()
                } else {
                    format!(" {}", self.databases.join(","))
                }
        })
    }
}

/// `$XDG_CONFIG_HOME/pgsafe/config.toml`, else `~/.config/pgsafe/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|base| base.join("pgsafe").join("config.toml"))
}

impl Config {
    /// Reads `--config`/`PGSAFE_CONFIG` (which must exist), else the default file when present.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let path = match explicit {
            Some(p) => {
                if !p.exists() {
                    return Err(Error::usage(format!(
                        "configuration file {} does not exist",
                        p.display()
                    ))
                    .hint("fix --config / PGSAFE_CONFIG, or remove it to run without a file"));
                }
                p.to_path_buf()
            }
            None => match default_path().filter(|p| p.exists()) {
                Some(p) => p,
                None => return Ok(Config::default()),
            },
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::usage(format!("cannot read configuration {}: {e}", path.display()))
        })?;
        let mut config = Config::parse(&text).map_err(|e| {
            Error::usage(format!("configuration {}: {}", path.display(), e.message))
                .hint("`pgsafe config check` shows what pgsafe understood; see the README's Configuration section")
        })?;
        config.path = Some(path);
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| {
            // toml's message names the unknown key and its line.
            Error::usage(e.to_string().trim().replace('\n', " "))
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        for (name, db) in &self.databases {
            if db.url.is_some() == db.url_env.is_some() {
                return Err(Error::usage(format!(
                    "database {name:?} needs exactly one of `url` and `url_env`"
                )));
            }
            if let Some(p) = &db.retention {
                p.validate()
                    .map_err(|e| Error::usage(format!("databases.{name}.retention: {e}")))?;
            }
        }
        self.retention
            .validate()
            .map_err(|e| Error::usage(format!("retention: {e}")))?;
        if let Some(c) = &self.backup.compression {
            if !matches!(c.as_str(), "zstd" | "gzip" | "none") {
                return Err(Error::usage(format!(
                    "backup.compression {c:?}: use zstd, gzip or none"
                )));
            }
        }
        if let Some(t) = self.backup.anomaly_threshold_percent {
            if !(0.0..=100.0).contains(&t) {
                return Err(Error::usage(
                    "backup.anomaly_threshold_percent must be between 0 and 100",
                ));
            }
        }
        if let Some(on) = &self.notifications.webhook_on {
            if !matches!(on.as_str(), "always" | "failure") {
                return Err(Error::usage(format!(
                    "notifications.webhook_on {on:?}: use always or failure"
                )));
            }
        }
        for job in &self.schedule {
            crate::schedule::parse_cron(&job.cron)
                .map_err(|e| Error::usage(format!("schedule {:?}: {e}", job.name())))?;
            for db in &job.databases {
                if !self.databases.contains_key(db) {
                    return Err(Error::usage(format!(
                        "schedule {:?} names database {db:?}, which [databases] does not define",
                        job.name()
                    )));
                }
            }
            if job.restore && job.job != JobKind::Verify {
                return Err(Error::usage(format!(
                    "schedule {:?}: `restore` only applies to verify jobs",
                    job.name()
                )));
            }
        }
        Ok(())
    }

    /// A configured database's connection.
    pub fn database_conn(
        &self,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnInfo> {
        let db = self.databases.get(name).ok_or_else(|| {
            Error::usage(format!("database {name:?} is not in the configuration"))
                .hint("`pgsafe config check` lists the configured databases")
        })?;
        let url = match (&db.url, &db.url_env) {
            (Some(u), _) => u.clone(),
            (None, Some(var)) => env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                Error::usage(format!(
                    "database {name:?}: environment variable {var} is not set"
                ))
                .hint("export it, or set `url` in the configuration")
            })?,
            (None, None) => unreachable!("validated"),
        };
        ConnInfo::resolve(Some(&url), env)
    }

    /// The configured database a real database name belongs to (its key, or its URL's dbname).
    pub fn database_for(&self, dbname: &str) -> Option<&DatabaseConfig> {
        if let Some(d) = self.databases.get(dbname) {
            return Some(d);
        }
        self.databases.iter().find_map(|(name, d)| {
            self.database_conn(name, &|k| std::env::var(k).ok())
                .ok()
                .filter(|c| c.dbname() == dbname)
                .map(|_| d)
        })
    }

    /// The retention policy of one database.
    pub fn policy_for(&self, dbname: &str) -> Policy {
        self.database_for(dbname)
            .and_then(|d| d.retention.clone())
            .unwrap_or_else(|| self.retention.clone())
    }

    /// Smoke checks configured for a database.
    pub fn smoke_for(&self, dbname: &str) -> Vec<String> {
        self.database_for(dbname)
            .map(|d| d.smoke_sql.clone())
            .unwrap_or_default()
    }

    /// Patterns of protected targets: every configured database marked `protected`.
    pub fn protected_names(&self) -> Vec<String> {
        self.databases
            .iter()
            .filter(|(_, d)| d.protected)
            .flat_map(|(name, _)| {
                let mut names = vec![name.clone()];
                if let Ok(c) = self.database_conn(name, &|k| std::env::var(k).ok()) {
                    if c.dbname() != name {
                        names.push(c.dbname().to_string());
                    }
                }
                names
            })
            .collect()
    }

    /// The staging server of restore drills, from `[verify]`.
    pub fn restore_to(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>> {
        match (&self.verify.restore_to, &self.verify.restore_to_env) {
            (Some(u), _) => Ok(Some(u.clone())),
            (None, Some(var)) => Ok(Some(env(var).filter(|v| !v.is_empty()).ok_or_else(
                || {
                    Error::usage(format!(
                        "verify.restore_to_env: environment variable {var} is not set"
                    ))
                },
            )?)),
            (None, None) => Ok(None),
        }
    }
}

type Result<T> = std::result::Result<T, Error>;

/// A URL for display: the password of a libpq URL, and the path and query of other URLs
/// (webhook and healthchecks URLs carry their token there), are replaced by `***`.
pub fn redact_url(url: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return match ConnInfo::resolve(Some(url), &|_| None) {
            Ok(c) => c.redacted(),
            Err(_) => "(invalid URL, not shown)".into(),
        };
    }
    match url::Url::parse(url) {
        Ok(u) if u.has_host() => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let hidden = u.path() != "/" || u.query().is_some();
            format!(
                "{}://{}{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                port,
                if hidden { "/***" } else { "" }
            )
        }
        _ => "(not a URL, not shown)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
[repository]
url = "s3://backups/prod"
s3_endpoint = "http://127.0.0.1:3900"
s3_force_path_style = true

[backup]
compression = "zstd"
compression_level = 5
globals = true

[retention]
keep_last = 3
keep_daily = 7
keep_within = "2d"

[verify]
restore_to_env = "STAGING_URL"

[notifications]
webhook_url = "https://hooks.example.com/services/T000/B000/XXXX"
healthchecks_url = "https://hc-ping.com/0f3c"
metrics_file = "/var/lib/prometheus/node-exporter/pgsafe.prom"

[databases.tickets]
url = "postgresql://app:s3cret@db.internal:5432/gestor_tickets"
protected = true
smoke_sql = ["SELECT count(*) > 0 FROM tickets"]
retention = { keep_daily = 30 }

[databases.billing]
url_env = "BILLING_URL"

[[schedule]]
job = "backup"
cron = "0 3 * * *"

[[schedule]]
job = "verify"
cron = "0 0 5 * * SUN"
databases = ["tickets"]
restore = true
"#;

    #[test]
    fn a_full_file_parses() {
        let c = Config::parse(FULL).unwrap();
        assert_eq!(c.repository.url.as_deref(), Some("s3://backups/prod"));
        assert_eq!(c.databases.len(), 2);
        assert_eq!(c.schedule.len(), 2);
        assert_eq!(c.policy_for("tickets").keep_daily, Some(30));
        assert_eq!(c.policy_for("billing").keep_daily, Some(7));
        assert_eq!(
            c.smoke_for("gestor_tickets").len(),
            1,
            "found by URL dbname"
        );
        assert!(c.protected_names().contains(&"gestor_tickets".to_string()));
        let env = |k: &str| (k == "BILLING_URL").then(|| "postgresql://x@h/billing".to_string());
        assert_eq!(
            c.database_conn("billing", &env).unwrap().dbname(),
            "billing"
        );
        assert!(c.database_conn("billing", &|_| None).is_err());
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        for (text, key) in [
            ("[backup]\ncompresion = \"zstd\"\n", "compresion"),
            ("repo = \"x\"\n", "repo"),
            (
                "[databases.a]\nurl = \"postgresql:///a\"\nprotect = true\n",
                "protect",
            ),
            (
                "[[schedule]]\njob = \"backup\"\ncron = \"* * * * *\"\nevery = 1\n",
                "every",
            ),
            ("[retention]\nkeep_dayly = 3\n", "keep_dayly"),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert!(e.message.contains(key), "{text}: {}", e.message);
        }
    }

    #[test]
    fn bad_values_are_rejected() {
        for text in [
            "[backup]\ncompression = \"lz4\"\n",
            "[databases.a]\nprotected = true\n",
            "[[schedule]]\njob = \"backup\"\ncron = \"not cron\"\n",
            "[[schedule]]\njob = \"backup\"\ncron = \"* * * * *\"\ndatabases = [\"nope\"]\n",
            "[retention]\nkeep_within = \"soon\"\n",
        ] {
            assert!(Config::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let shown = redact_url("postgresql://app:s3cret@db.internal:5432/gestor_tickets");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db.internal"));
        let hook = redact_url("https://hooks.example.com/services/T000/B000/XXXX?token=abc");
        assert_eq!(hook, "https://hooks.example.com/***");
        assert_eq!(
            redact_url("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080"
        );
    }
}
