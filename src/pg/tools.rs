//! Finding the PostgreSQL client programs (pg_dump, pg_restore) that can handle a given server.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Error;

/// A PostgreSQL client program and the version it reports.
#[derive(Debug, Clone)]
pub struct PgTool {
    pub path: PathBuf,
    pub version: String,
    pub major: u32,
}

/// Parses `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` into ("15.18", 15).
/// Before PostgreSQL 10 the major was two numbers (9.6); those count as 9.
pub fn parse_version(output: &str) -> Option<(String, u32)> {
    let version = output
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((version.to_string(), major))
}

fn probe(path: &Path) -> Option<PgTool> {
    let out = Command::new(path).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    let (version, major) = parse_version(&String::from_utf8_lossy(&out.stdout))?;
    Some(PgTool {
        path: path.to_path_buf(),
        version,
        major,
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Picks `name` whose major version is at least `server_major`: from `bin_dir` when given (and
/// only there), else `/usr/lib/postgresql/<server_major>/bin`, else PATH.
pub fn find(name: &str, bin_dir: Option<&Path>, server_major: u32) -> Result<PgTool, Error> {
    let candidates: Vec<PathBuf> = match bin_dir {
        Some(dir) => vec![dir.join(name)],
        None => [
            Some(PathBuf::from(format!(
                "/usr/lib/postgresql/{server_major}/bin/{name}"
            ))),
            on_path(name),
        ]
        .into_iter()
        .flatten()
        .collect(),
    };
    let mut seen = Vec::new();
    for path in &candidates {
        if let Some(tool) = probe(path) {
            if tool.major >= server_major {
                return Ok(tool);
            }
            seen.push(format!("{} is version {}", path.display(), tool.version));
        }
    }
    let found = if seen.is_empty() {
        format!(
            "none found (looked at {})",
            candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        seen.join("; ")
    };
    Err(Error::usage(format!(
        "no {name} able to handle a PostgreSQL {server_major} server: {found}"
    ))
    .hint(format!(
        "{name} must be at least as new as the server: install postgresql-client-{server_major} \
         (or newer), or point --pg-bin-dir at its bin directory"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(("15.18".into(), 15))
        );
        assert_eq!(
            parse_version("pg_restore (PostgreSQL) 9.6.24"),
            Some(("9.6.24".into(), 9))
        );
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 17beta1"),
            Some(("17beta1".into(), 17))
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn missing_bin_dir_says_where_it_looked() {
        let err = find("pg_dump", Some(Path::new("/nonexistent/bin")), 15).unwrap_err();
        assert!(
            err.message.contains("/nonexistent/bin/pg_dump"),
            "{}",
            err.message
        );
        assert!(err.hint.unwrap().contains("postgresql-client-15"));
    }
}
