//! The guarantees a user relies on without seeing them: one snapshot for the dump and the row
//! counts, a clean stop on SIGINT/SIGTERM, and a password that never shows.

mod common;

use std::process::Stdio;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Rows inserted while the dump runs are neither in the archive nor in the manifest's counts.
#[test]
fn row_counts_come_from_the_dumps_own_snapshot() {
    let db = fixture_db("snapshot");
    let tickets_before: i64 = psql(&db, "SELECT count(*) FROM tickets").parse().unwrap();
    let dir = tempfile::tempdir().unwrap();

    let lock = TableLock::new(&db, "comments");
    let child = pgsafe()
        .args(["--json", "backup", "--repo"])
        .arg(dir.path())
        .env("DATABASE_URL", db_url(&db))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // pg_dump has imported the snapshot and waits on the lock: now change the data.
    wait_for_blocked_pg_dump(&db);
    psql(
        &db,
        "INSERT INTO tickets (reference, title, body, reporter_id, created_at, updated_at)
         SELECT 'LATE-' || i, 'late ' || i, 'inserted during the dump', 1, now(), now()
           FROM generate_series(1, 25) i",
    );
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(summary["manifest_key"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let tickets = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "tickets")
        .unwrap()["rows"]
        .as_i64()
        .unwrap();
    assert_eq!(
        tickets, tickets_before,
        "the manifest counted rows from after the snapshot"
    );
    assert_eq!(
        psql(&db, "SELECT count(*) FROM tickets"),
        (tickets_before + 25).to_string()
    );

    let stored = std::fs::read(dir.path().join(summary["object_key"].as_str().unwrap())).unwrap();
    let copy = unique("snapshot_copy");
    pg_restore_into(&decompress("zstd", &stored), &copy);
    assert_eq!(
        psql(&copy, "SELECT count(*) FROM tickets"),
        tickets_before.to_string()
    );
    assert_eq!(
        psql(
            &copy,
            "SELECT count(*) FROM tickets WHERE reference LIKE 'LATE-%'"
        ),
        "0"
    );
    psql("postgres", &format!("DROP DATABASE \"{copy}\""));
    psql("postgres", &format!("DROP DATABASE \"{db}\""));
}

/// Sends `signal` while pg_dump is streaming table data (its COPY is running), then checks that
/// nothing is left: exit 130, no manifest, no object, no upload, no pg_dump, no session.
fn interrupt_mid_stream(db: &str, signal: Signal, repo: &str, s3: Option<&S3Target>) {
    let mut cmd = pgsafe();
    if let Some(t) = s3 {
        t.apply(&mut cmd);
    }
    // Maximum single-threaded zstd makes compression the bottleneck: pg_dump is held in its
    // COPY phase by back-pressure for seconds, so the signal lands mid-stream.
    let child = cmd
        .args([
            "backup",
            "--repo",
            repo,
            "--compression-level",
            "19",
            "--compression-threads",
            "0",
        ])
        .env("DATABASE_URL", db_url(db))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until("pg_dump to stream table data", 60, || {
        psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND query LIKE 'COPY %'"
            ),
        ) == "1"
    });
    assert!(children_of(pid).iter().any(|(_, name)| name == "pg_dump"));
    kill(Pid::from_raw(pid as i32), signal).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(children_of(pid).is_empty(), "processes left behind");
    assert!(processes_with("pg_dump", "")
        .iter()
        .all(|p| children_of(*p).is_empty()));
    wait_until("pgsafe's sessions to end", 10, || {
        psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'"),
        ) == "0"
    });
}

#[test]
fn sigint_mid_stream_to_garage_and_s3s_leaves_nothing() {
    let db = large_db("sigint", 20);
    let mut targets = vec![env().s3s.clone()];
    targets.extend(garage().cloned());
    for target in targets {
        let prefix = unique("sigint");
        interrupt_mid_stream(&db, Signal::SIGINT, &target.repo(&prefix), Some(&target));
        let keys = target.keys(&prefix);
        assert!(keys.is_empty(), "objects left on {}: {keys:?}", target.name);
        if let Some(uploads) = target.multipart_uploads(&prefix) {
            assert!(
                uploads.is_empty(),
                "uploads left on {}: {uploads:?}",
                target.name
            );
        }
    }
    psql("postgres", &format!("DROP DATABASE \"{db}\""));
}

#[test]
fn sigterm_mid_stream_to_a_local_directory_leaves_nothing() {
    let db = large_db("sigterm", 20);
    let dir = tempfile::tempdir().unwrap();
    interrupt_mid_stream(&db, Signal::SIGTERM, dir.path().to_str().unwrap(), None);
    let left = files_containing(dir.path(), "");
    assert!(left.is_empty(), "files left: {left:?}");
    psql("postgres", &format!("DROP DATABASE \"{db}\""));
}

/// The password is handed to pg_dump through its environment, never its command line, and
/// pgsafe never prints it, at the most verbose log level, on success or failure.
#[test]
fn password_never_in_argv_or_output() {
    let db = fixture_db("secret");
    let password = &env().pg_password;
    let dir = tempfile::tempdir().unwrap();
    let lock = TableLock::new(&db, "comments");
    let child = pgsafe()
        .args(["-vv", "backup", "--repo"])
        .arg(dir.path())
        .env("DATABASE_URL", db_url(&db))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_blocked_pg_dump(&db);
    let dumps: Vec<u32> = children_of(child.id())
        .into_iter()
        .filter(|(_, name)| name == "pg_dump")
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(dumps.len(), 1);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", dumps[0])).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(cmdline.contains("--format=custom"), "{cmdline}");
    assert!(
        !cmdline.contains(password.as_str()),
        "password on pg_dump's argv: {cmdline}"
    );
    assert!(
        !cmdline.contains("postgresql://"),
        "URL on pg_dump's argv: {cmdline}"
    );
    drop(lock);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(
            !text.contains(password.as_str()),
            "password printed: {text}"
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains(":***@"));

    // Failures quote URLs and server messages: still no password.
    let out = run(pgsafe()
        .args(["-vv", "backup", "--repo"])
        .arg(dir.path())
        .env("DATABASE_URL", db_url("missing_db_for_secret_test")));
    out.assert_code(1);
    assert!(
        !out.stderr.contains(password.as_str()),
        "password printed: {}",
        out.stderr
    );
    let wrong = db_url(&db).replace(password.as_str(), "wrong-password-123");
    let out = run(pgsafe()
        .args(["backup", "--repo"])
        .arg(dir.path())
        .env("DATABASE_URL", wrong));
    out.assert_code(1);
    assert!(
        out.stderr.contains("password authentication failed"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("wrong-password-123"),
        "password printed: {}",
        out.stderr
    );
    psql("postgres", &format!("DROP DATABASE \"{db}\""));
}
