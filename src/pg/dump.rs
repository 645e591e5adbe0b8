//! The pg_dump child: custom format, its own compression off (pgsafe compresses the stream), and
//! the connection handed over through the environment only.

use std::process::{Command, Stdio};

use anyhow::Result;

use super::{ConnInfo, PgTool};
use crate::process::Child;

#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    /// Snapshot exported by pgsafe's own transaction (`pg_export_snapshot()`).
    pub snapshot: Option<String>,
    pub with_owner: bool,
    pub with_acl: bool,
}

/// pg_dump's arguments. No connection settings: those go through the environment.
pub fn dump_args(opts: &DumpOptions) -> Vec<String> {
    let mut args = vec!["--format=custom".to_string(), "--compress=0".to_string()];
    if !opts.with_owner {
        args.push("--no-owner".into());
    }
    if !opts.with_acl {
        args.push("--no-acl".into());
    }
    if let Some(s) = &opts.snapshot {
        args.push(format!("--snapshot={s}"));
    }
    args
}

/// A command for a libpq program with the connection in its environment.
pub fn libpq_command(tool: &PgTool, conn: &ConnInfo) -> Command {
    let mut cmd = Command::new(&tool.path);
    let (set, removed) = conn.child_env();
    for var in removed {
        cmd.env_remove(var);
    }
    cmd.envs(set);
    cmd
}

/// Starts pg_dump writing the archive to a pipe; take it with [`Child::take_stdout`].
pub fn spawn(tool: &PgTool, conn: &ConnInfo, opts: &DumpOptions) -> Result<Child> {
    let mut cmd = libpq_command(tool, conn);
    cmd.args(dump_args(opts)).stdout(Stdio::piped());
    Child::spawn("pg_dump", cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runbook_defaults() {
        let args = dump_args(&DumpOptions {
            snapshot: Some("00000003-0000001B-1".into()),
            ..Default::default()
        });
        assert_eq!(
            args,
            [
                "--format=custom",
                "--compress=0",
                "--no-owner",
                "--no-acl",
                "--snapshot=00000003-0000001B-1"
            ]
        );
    }

    #[test]
    fn owner_and_acl_kept_on_request() {
        let args = dump_args(&DumpOptions {
            with_owner: true,
            with_acl: true,
            ..Default::default()
        });
        assert!(!args.iter().any(|a| a == "--no-owner" || a == "--no-acl"));
    }
}
