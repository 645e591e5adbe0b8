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
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Stream pg_dump through compression and SHA-256 into the repository, then write the manifest.
    Backup(BackupArgs),
    /// List the complete backups in the repository (and, apart, incomplete uploads).
    List(ListArgs),
    /// Show one backup's manifest: an ID, or `latest` with --database.
    Show(ShowArgs),
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

    /// Release tag carried in the backup's name and manifest, e.g. v1.0.0.
    #[arg(long, value_name = "TAG")]
    pub tag: Option<String>,

    /// Compression of the stored archive.
    #[arg(long, value_enum, default_value = "zstd", env = "PGSAFE_COMPRESSION")]
    pub compression: CompressionArg,

    /// Compression level [default: zstd 3, gzip 6].
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
