//! pgsafe: safe, verified PostgreSQL backups and restores.
//!
//! Layout: `cli` (argument types) -> `commands` (one per subcommand, orchestration only) over the
//! library pieces: `pg` (connections, pg_dump, queries), `pipeline` (hash, compress, cut into
//! parts), `storage` (local directory and S3), `catalog` (IDs, keys, manifests), `process`
//! (child processes), `output` (logs and progress), `signal`, and `error` (exit codes).

pub mod catalog;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod pg;
pub mod pipeline;
pub mod process;
pub mod restore;
pub mod schedule;
pub mod signal;
pub mod storage;
