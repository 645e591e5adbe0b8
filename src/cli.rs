//! Command-line types only: what the user can type. Behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "pgsafe",
    version,
    about = "Safe, verified PostgreSQL backups and restores to S3-compatible storage or a local directory",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub output: OutputArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct OutputArgs {
    /// Print results as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// No progress bar or periodic progress lines.
    #[arg(long, global = true, env = "PGSAFE_NO_PROGRESS", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_progress: bool,

    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Configuration file [default: $XDG_CONFIG_HOME/pgsafe/config.toml, when it exists].
    #[arg(long, global = true, env = "PGSAFE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream pg_dump through compression and SHA-256 into the repository, then write the manifest.
    Backup(BackupArgs),
    /// List the complete backups in the repository (and, apart, incomplete uploads).
    List(ListArgs),
    /// Show one backup's manifest: an ID, or `latest` with --database.
    Show(ShowArgs),
    /// Restore a backup with Strategy A (fresh) or B (clean), behind safety interlocks.
    Restore(RestoreArgs),
    /// Run the integrity check of a backup against a database.
    Check(CheckArgs),
    /// Download a backup, verified and decompressed, as a file plain pg_restore accepts.
    Download(DownloadArgs),
    /// List the audit records of restores and refusals.
    Audit(AuditArgs),
    /// Prove backups restore: checksums and table of contents, or a restore into staging.
    Verify(VerifyArgs),
    /// Remove backups the retention policy does not keep (a dry run unless --yes).
    Prune(PruneArgs),
    /// Run the configured jobs (backup, prune, verify) on their cron schedules, in the foreground.
    Schedule(ScheduleArgs),
    /// The configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the configuration and print the effective settings, secrets redacted.
    Check(ConfigCheckArgs),
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    /// Backup ID, or `latest` (with --database). Not with --all.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub id: Option<String>,

    /// Every complete backup (of --database, when given).
    #[arg(long)]
    pub all: bool,

    /// Database whose backups `latest` and --all mean.
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,

    /// A staging server: restore into a scratch database there, run the integrity check, drop it.
    #[arg(
        long,
        env = "PGSAFE_RESTORE_TO",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub restore_to: Option<String>,

    /// Restore drill into the staging server of the configuration's [verify] section.
    #[arg(long, conflicts_with = "restore_to")]
    pub drill: bool,

    /// Parallel pg_restore jobs for --restore-to [default: the number of CPUs].
    #[arg(long, value_name = "N")]
    pub jobs: Option<u32>,

    /// SQL that must return true in the restored scratch database.
    #[arg(long = "smoke-sql", value_name = "SQL")]
    pub smoke_sql: Vec<String>,

    #[command(flatten)]
    pub fetch: FetchArgs,

    #[command(flatten)]
    pub notify: NotifyArgs,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    /// Only this database [default: every database in the repository].
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,

    /// Delete for real (without it, prune only prints what it would do).
    #[arg(long)]
    pub yes: bool,

    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep everything within this duration of the newest backup (e.g. 7d, 36h).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,

    /// Release-tagged backups fall under the rules like the others.
    #[arg(long)]
    pub prune_tagged: bool,

    /// `pre-restore` safety backups fall under the rules like the others.
    #[arg(long)]
    pub prune_pre_restore: bool,

    /// Failed runs' leftovers (unfinished uploads, objects without a manifest) older than this
    /// are removed.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub stale_after: String,

    #[command(flatten)]
    pub notify: NotifyArgs,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Run every job once now, then exit (a check of the schedule's jobs).
    #[arg(long)]
    pub once: bool,
}

/// Where results are reported, beyond stdout.
#[derive(Debug, Args, Clone, Default)]
pub struct NotifyArgs {
    /// POST a JSON body here on success and failure [config: notifications.webhook_url].
    #[arg(
        long,
        env = "PGSAFE_WEBHOOK_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub webhook_url: Option<String>,

    /// Healthchecks-style URL pinged at /start, on success and at /fail.
    #[arg(
        long,
        env = "PGSAFE_HEALTHCHECKS_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub healthchecks_url: Option<String>,

    /// The name notifications and the metrics file give this run [default: the command's name;
    /// `pgsafe schedule` passes each job's name].
    #[arg(long, env = "PGSAFE_JOB_NAME", value_name = "NAME")]
    pub job_name: Option<String>,

    /// Prometheus text file rewritten with the repository's latest figures.
    #[arg(long, env = "PGSAFE_METRICS_FILE", value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// Strategy A (recommended): a new empty database restored from the backup.
    #[value(alias = "a", alias = "A")]
    Fresh,
    /// Strategy B (not recommended): pg_restore --clean over the existing database.
    #[value(alias = "b", alias = "B")]
    Clean,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    /// Backup ID, or `latest` (with --database). Not used with --undo.
    #[arg(required_unless_present = "undo")]
    pub id: Option<String>,

    /// Database whose newest complete backup `latest` means.
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,

    /// The database to restore into (libpq URL; its database name is the target).
    #[arg(
        long,
        env = "PGSAFE_TARGET_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub target: String,

    /// A (fresh): new database, staged then swapped in. B (clean): over the existing one.
    #[arg(long, value_enum, default_value = "fresh")]
    pub strategy: StrategyArg,

    /// Strategy A exactly as the runbook: DROP DATABASE, CREATE DATABASE, pg_restore.
    #[arg(long)]
    pub in_place: bool,

    /// Swap back the database a staged restore kept aside (`<db>__pgsafe_pre_<time>`).
    #[arg(long, conflicts_with_all = ["in_place", "dry_run"])]
    pub undo: bool,

    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// The target database's name, confirming the restore (asked on a terminal when missing).
    #[arg(long, value_name = "NAME")]
    pub confirm: Option<String>,

    /// Why this restore happens (required; recorded in the audit record).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,

    /// Who approved the restore (recorded).
    #[arg(long, value_name = "NAME")]
    pub approved_by: Option<String>,

    /// Block new connections to the target and terminate the existing ones.
    #[arg(long)]
    pub terminate_connections: bool,

    /// Protected target databases (glob patterns; comma-separated in PGSAFE_PROTECTED).
    #[arg(
        long,
        env = "PGSAFE_PROTECTED",
        value_delimiter = ',',
        value_name = "PATTERN"
    )]
    pub protected: Vec<String>,

    /// Allow restoring over a protected target.
    #[arg(long)]
    pub allow_protected: bool,

    /// Skip the pre-restore backup of the current target.
    #[arg(long)]
    pub no_safety_backup: bool,

    /// Strategy B even when the target's schema migrations are newer than the backup's.
    #[arg(long)]
    pub allow_newer_migrations: bool,

    /// A migration table beyond the well-known ones: table:column or schema.table:column.
    #[arg(long, env = "PGSAFE_MIGRATIONS_TABLE", value_name = "TABLE:COLUMN")]
    pub migrations_table: Option<String>,

    /// Restore into a server older than the backup's source.
    #[arg(long)]
    pub allow_downgrade: bool,

    /// Parallel pg_restore jobs (Strategy A) [default: the number of CPUs].
    #[arg(long, value_name = "N")]
    pub jobs: Option<u32>,

    /// Restore ownership (pg_restore without --no-owner).
    #[arg(long)]
    pub with_owner: bool,

    /// Restore privileges (pg_restore without --no-acl).
    #[arg(long)]
    pub with_acl: bool,

    /// SQL that must return true after the restore, e.g. "SELECT count(*) > 0 FROM tickets".
    #[arg(long = "smoke-sql", value_name = "SQL")]
    pub smoke_sql: Vec<String>,

    #[command(flatten)]
    pub fetch: FetchArgs,

    /// Database pgsafe connects to for CREATE/ALTER/DROP DATABASE.
    #[arg(long, default_value = "postgres", value_name = "NAME")]
    pub maintenance_db: String,

    /// First apply the backup's globals (roles, tablespaces) to the target server; roles that
    /// already exist are left as they are.
    #[arg(long)]
    pub with_globals: bool,

    /// Local audit log [default: $XDG_STATE_HOME/pgsafe/audit.log].
    #[arg(long, env = "PGSAFE_AUDIT_LOG", value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
}

/// Where a backup is fetched to, and which PostgreSQL programs read it.
#[derive(Debug, Args, Clone)]
pub struct FetchArgs {
    /// Where the archive is downloaded and decompressed [default: the system temp directory].
    #[arg(long, env = "PGSAFE_WORK_DIR", value_name = "DIR")]
    pub work_dir: Option<PathBuf>,

    /// Directory holding pg_restore and pg_dump.
    #[arg(long, env = "PGSAFE_PG_BIN_DIR", value_name = "DIR")]
    pub pg_bin_dir: Option<PathBuf>,
}

impl FetchArgs {
    pub fn work_dir(&self) -> PathBuf {
        self.work_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    /// The database to check (libpq URL).
    #[arg(
        long,
        env = "PGSAFE_TARGET_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub target: String,

    /// Backup ID, or `latest` (with --database).
    #[arg(long, value_name = "ID")]
    pub backup: String,

    /// Database whose newest complete backup `latest` means.
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,

    /// SQL that must return true.
    #[arg(long = "smoke-sql", value_name = "SQL")]
    pub smoke_sql: Vec<String>,

    #[command(flatten)]
    pub fetch: FetchArgs,
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    /// Backup ID, or `latest` (with --database).
    pub id: String,

    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,

    /// The file to write (must not exist).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    #[arg(long, env = "PGSAFE_PG_BIN_DIR", value_name = "DIR")]
    pub pg_bin_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    /// Only records about this database.
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
}

/// Where backups live.
#[derive(Debug, Args, Clone)]
pub struct RepoArgs {
    /// Repository: `s3://bucket/prefix`, `file:///path` or a directory path.
    /// [default: $XDG_DATA_HOME/pgsafe/repo]
    #[arg(long, env = "PGSAFE_REPO", value_name = "URL")]
    pub repo: Option<String>,

    /// S3 endpoint for S3-compatible servers (MinIO, Garage, Ceph...).
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// S3 region [default: the AWS configuration's, else us-east-1].
    #[arg(long, env = "AWS_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,

    /// Path-style S3 addressing (http://host/bucket/key). On by itself for IP and localhost endpoints.
    #[arg(long, env = "PGSAFE_S3_FORCE_PATH_STYLE", value_parser = clap::builder::BoolishValueParser::new())]
    pub s3_force_path_style: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    Zstd,
    Gzip,
    None,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    /// libpq-style connection URL of the database to back up. Without it, the PG* variables
    /// (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGPASSFILE, PGSSLMODE) apply.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// A database of the configuration file, by name (repeatable).
    #[arg(
        long = "database",
        value_name = "NAME",
        conflicts_with = "database_url"
    )]
    pub databases: Vec<String>,

    /// Every database of the configuration, or, without one, every non-template database of the
    /// server --database-url / PG* reach.
    #[arg(long, conflicts_with = "databases")]
    pub all: bool,

    /// Also store the cluster's globals (roles, tablespaces: pg_dumpall --globals-only) with
    /// each backup [config: backup.globals].
    #[arg(long)]
    pub globals: bool,

    /// Release tag carried in the backup's name and manifest, e.g. v1.0.0.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// Compression of the stored archive.
    /// [default: zstd; config: backup.compression]
    #[arg(long, value_enum, env = "PGSAFE_COMPRESSION")]
    pub compression: Option<CompressionArg>,

    /// Compression level [default: zstd: pgsafe's parameters for pg_dump archives (see
    /// docs/benchmarks.md); gzip: 6]. zstd 1 is the fastest, 3 zstd's own default.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub compression_level: Option<i32>,

    /// zstd worker threads [default: the number of CPUs]; 0 compresses on the pipeline thread.
    #[arg(long, value_name = "N")]
    pub compression_threads: Option<u32>,

    /// Keep ownership in the archive (pg_dump without --no-owner).
    #[arg(long)]
    pub with_owner: bool,

    /// Keep privileges in the archive (pg_dump without --no-acl).
    #[arg(long)]
    pub with_acl: bool,

    /// Directory holding the pg_dump to use [default: /usr/lib/postgresql/<server major>/bin, then PATH].
    #[arg(long, env = "PGSAFE_PG_BIN_DIR", value_name = "DIR")]
    pub pg_bin_dir: Option<PathBuf>,

    /// First multipart part size in MiB (6 to 5120); parts grow so a stream can reach 5 TiB.
    #[arg(long, default_value_t = 8, value_name = "MIB")]
    pub part_size_mib: u64,

    /// Parts uploaded concurrently.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parts_in_flight: usize,

    /// A migration table beyond the well-known ones, recorded in the manifest: table:column or
    /// schema.table:column.
    #[arg(long, env = "PGSAFE_MIGRATIONS_TABLE", value_name = "TABLE:COLUMN")]
    pub migrations_table: Option<String>,

    /// Flag a backup whose raw size or row count fell more than this percentage against the
    /// previous one [default: 50; config: backup.anomaly_threshold_percent].
    #[arg(long, value_name = "PERCENT")]
    pub anomaly_threshold: Option<f64>,

    #[command(flatten)]
    pub notify: NotifyArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    /// Only this database's backups.
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    /// Backup ID, or `latest` (needs --database).
    pub id: String,

    /// Database whose newest complete backup `latest` means.
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
}
