//! Backups that must fail cleanly: a clear message, a non-zero exit, no manifest, no upload and
//! no pg_dump left behind. Real PostgreSQL, real S3 servers.

mod common;

use common::*;

/// Everything a failed run could have left in a local repository.
fn assert_local_repo_empty(dir: &std::path::Path) {
    let left = files_containing(dir, "");
    assert!(left.is_empty(), "a failed backup left files: {left:?}");
}

fn assert_s3_prefix_empty(target: &S3Target, prefix: &str) {
    let keys = target.keys(prefix);
    assert!(
        keys.is_empty(),
        "a failed backup left objects on {}: {keys:?}",
        target.name
    );
    if let Some(uploads) = target.multipart_uploads(prefix) {
        assert!(
            uploads.is_empty(),
            "a failed backup left uploads on {}: {uploads:?}",
            target.name
        );
    }
}

fn s3_targets() -> Vec<S3Target> {
    let mut t = vec![env().s3s.clone()];
    t.extend(garage().cloned());
    t
}

#[test]
fn missing_database_is_a_clear_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(pgsafe()
        .args(["backup", "--repo"])
        .arg(dir.path())
        .args(["--database-url", &db_url("no_such_database_here")]));
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("database \"no_such_database_here\" does not exist"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("HINT:"), "{}", out.stderr);
    assert_local_repo_empty(dir.path());
    let out = run(pgsafe()
        .args(["backup", "--repo", "gs://bucket"])
        .env("DATABASE_URL", db_url("postgres")));
    out.assert_code(2);
    assert!(
        out.stderr.contains("unsupported repository"),
        "{}",
        out.stderr
    );
}

#[test]
fn permission_denied_leaves_nothing() {
    let db = fixture_db("perm");
    let role = unique("limited");
    psql(
        "postgres",
        &format!("CREATE ROLE {role} LOGIN PASSWORD 'limited-pw'"),
    );
    psql(
        &db,
        &format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
    );
    psql(&db, &format!("REVOKE SELECT ON attachments FROM {role}"));
    let url = db_url(&db).replacen(
        &format!("postgres:{}@", env().pg_password),
        &format!("{role}:limited-pw@"),
        1,
    );
    for target in s3_targets() {
        let prefix = unique("perm");
        let out = run(target.apply(&mut pgsafe()).args([
            "backup",
            "--repo",
            &target.repo(&prefix),
            "--database-url",
            &url,
        ]));
        out.assert_code(1);
        assert!(out.stderr.contains("permission denied"), "{}", out.stderr);
        assert!(
            !out.stderr.contains("limited-pw"),
            "password in output: {}",
            out.stderr
        );
        assert_s3_prefix_empty(&target, &prefix);
    }
    psql("postgres", &format!("DROP DATABASE \"{db}\""));
    psql("postgres", &format!("DROP ROLE {role}"));
}

#[test]
fn pg_dump_older_than_the_server_is_refused() {
    let bin = wrapped_pg_dump("echo 'pg_dump (PostgreSQL) 13.4'");
    let dir = tempfile::tempdir().unwrap();
    let out = run(pgsafe()
        .args(["backup", "--repo"])
        .arg(dir.path())
        .arg("--pg-bin-dir")
        .arg(bin.path())
        .args(["--database-url", &db_url("postgres")]));
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("no pg_dump able to handle a PostgreSQL 15 server"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("version 13.4"), "{}", out.stderr);
    assert!(
        out.stderr.contains("postgresql-client-15"),
        "{}",
        out.stderr
    );
    assert_local_repo_empty(dir.path());
    let out = run(pgsafe()
        .args(["backup", "--repo", "gs://bucket"])
        .env("DATABASE_URL", db_url("postgres")));
    out.assert_code(2);
    assert!(
        out.stderr.contains("unsupported repository"),
        "{}",
        out.stderr
    );
}

/// A pg_dump that writes a whole archive and then exits 1 did not make a backup.
#[test]
fn pg_dump_failing_after_its_output_is_a_failed_backup() {
    let db = fixture_db("latefail");
    let bin = wrapped_pg_dump(
        "[ \"$1\" = --version ] && exec \"$REAL\" --version\n\"$REAL\" \"$@\"\necho 'pg_dump: error: simulated late failure' >&2\nexit 1",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(pgsafe()
        .args(["backup", "--repo"])
        .arg(dir.path())
        .arg("--pg-bin-dir")
        .arg(bin.path())
        .args(["--database-url", &db_url(&db)]));
    out.assert_code(1);
    assert!(
        out.stderr.contains("pg_dump exited with status 1"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("simulated late failure"),
        "{}",
        out.stderr
    );
    assert_local_repo_empty(dir.path());

    for target in s3_targets() {
        let prefix = unique("latefail");
        let out = run(target
            .apply(&mut pgsafe())
            .args([
                "backup",
                "--repo",
                &target.repo(&prefix),
                "--database-url",
                &db_url(&db),
            ])
            .arg("--pg-bin-dir")
            .arg(bin.path()));
        out.assert_code(1);
        assert!(
            out.stderr.contains("simulated late failure"),
            "{}",
            out.stderr
        );
        assert_s3_prefix_empty(&target, &prefix);
    }
    psql("postgres", &format!("DROP DATABASE \"{db}\""));
}

/// The server drops pg_dump's connection in the middle of the dump.
#[test]
fn connection_lost_midway_stops_everything() {
    let db = fixture_db("connlost");
    for target in s3_targets() {
        let prefix = unique("connlost");
        let lock = TableLock::new(&db, "comments");
        let mut cmd = target
            .apply(&mut pgsafe())
            .args([
                "backup",
                "--repo",
                &target.repo(&prefix),
                "--database-url",
                &db_url(&db),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_blocked_pg_dump(&db);
        psql(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' \
                 AND query LIKE 'LOCK TABLE%'"
            ),
        );
        let pgsafe_pid = cmd.id();
        let out = {
            let status = cmd.wait().unwrap();
            let mut stderr = String::new();
            std::io::Read::read_to_string(cmd.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            (status, stderr)
        };
        drop(lock);
        assert_eq!(out.0.code(), Some(1), "{}", out.1);
        assert!(out.1.contains("pg_dump exited with status 1"), "{}", out.1);
        assert!(
            out.1.contains("terminating connection"),
            "pg_dump's stderr is shown: {}",
            out.1
        );
        assert!(children_of(pgsafe_pid).is_empty());
        assert_s3_prefix_empty(&target, &prefix);
    }
    psql("postgres", &format!("DROP DATABASE \"{db}\""));
}

#[test]
fn s3_server_down_is_a_clear_failure() {
    // A port nothing listens on: bind one, then close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut target = env().s3s.clone();
    target.endpoint = format!("http://127.0.0.1:{port}");
    let out = run(target.apply(&mut pgsafe()).args([
        "backup",
        "--repo",
        &target.repo("down"),
        "--database-url",
        &db_url("postgres"),
    ]));
    out.assert_code(1);
    assert!(
        out.stderr.contains("S3 HeadBucket failed"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("HINT: the S3 endpoint could not be reached"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains(&env().pg_password),
        "password in output"
    );
}

#[test]
fn missing_bucket_and_wrong_credentials_are_clear_failures() {
    for target in s3_targets() {
        let mut nobucket = target.clone();
        nobucket.bucket = unique("nobucket").replace('_', "-");
        let out = run(nobucket.apply(&mut pgsafe()).args([
            "backup",
            "--repo",
            &nobucket.repo("x"),
            "--database-url",
            &db_url("postgres"),
        ]));
        out.assert_code(1);
        assert!(
            out.stderr.contains("S3 HeadBucket failed"),
            "{}: {}",
            target.name,
            out.stderr
        );
        assert!(
            out.stderr.contains("HINT: the bucket does not exist"),
            "{}",
            out.stderr
        );

        let prefix = unique("badcreds");
        let mut badcreds = target.clone();
        badcreds.secret_key = "definitely-not-the-secret".into();
        let out = run(badcreds.apply(&mut pgsafe()).args([
            "backup",
            "--repo",
            &badcreds.repo(&prefix),
            "--database-url",
            &db_url("postgres"),
        ]));
        out.assert_code(1);
        assert!(
            out.stderr.contains("HINT: the S3 credentials were refused"),
            "{}: {}",
            target.name,
            out.stderr
        );
        assert!(
            out.stderr.contains("HeadBucket failed"),
            "{}: {}",
            target.name,
            out.stderr
        );
        assert!(
            !out.stderr.contains("definitely-not-the-secret"),
            "secret in output"
        );
        assert_s3_prefix_empty(&target, &prefix);
    }
}

#[test]
fn unwritable_local_repository_is_a_clear_failure() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let out = run(pgsafe()
        .args(["backup", "--repo"])
        .arg(&file)
        .args(["--database-url", &db_url("postgres")]));
    out.assert_code(1);
    assert!(out.stderr.contains("cannot use"), "{}", out.stderr);
    assert!(out.stderr.contains("HINT:"), "{}", out.stderr);
}

#[test]
fn bad_arguments_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (args, expect) in [
        (vec!["--tag", "../evil"], "invalid tag"),
        (vec!["--compression-level", "42"], "out of range"),
        (
            vec!["--part-size-mib", "1"],
            "--part-size-mib 1 is out of range",
        ),
        (
            vec![
                "--database-url",
                "postgresql://u:hunter2@h/db?sslmode=bogus",
            ],
            "invalid sslmode",
        ),
    ] {
        let out = run(pgsafe()
            .arg("backup")
            .arg("--repo")
            .arg(dir.path())
            .args(&args)
            .env("DATABASE_URL", db_url("postgres")));
        out.assert_code(2);
        assert!(out.stderr.contains(expect), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("hunter2"));
    }
    assert_local_repo_empty(dir.path());
    let out = run(pgsafe()
        .args(["backup", "--repo", "gs://bucket"])
        .env("DATABASE_URL", db_url("postgres")));
    out.assert_code(2);
    assert!(
        out.stderr.contains("unsupported repository"),
        "{}",
        out.stderr
    );
}
