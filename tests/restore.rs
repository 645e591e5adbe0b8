//! Restores against a real PostgreSQL and real S3 servers: round trips with both strategies,
//! corrupt backups, every interlock, failing and interrupted restores, the safety backup, undo,
//! the integrity check, download and the audit record.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// A repository, local or on an S3 server, and commands pointed at it.
struct Repo {
    url: String,
    s3: Option<S3Target>,
    _dir: Option<tempfile::TempDir>,
    audit: tempfile::TempDir,
}

impl Repo {
    fn local() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        Repo {
            url: dir.path().display().to_string(),
            s3: None,
            _dir: Some(dir),
            audit: tempfile::tempdir().unwrap(),
        }
    }

    fn s3(target: &S3Target) -> Repo {
        Repo {
            url: target.repo(&unique("restore")),
            s3: Some(target.clone()),
            _dir: None,
            audit: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self) -> Command {
        self.cmd_for(pgsafe())
    }

    /// `script` (a pseudo-terminal) with the same environment as [`Repo::cmd`].
    fn script(&self) -> Command {
        let mut cmd = pgsafe();
        cmd.env_remove("PGSAFE_NO_PROGRESS");
        let program = Command::new("script");
        let mut out = self.cmd_for(program);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => out.env(k, v),
                None => out.env_remove(k),
            };
        }
        out
    }

    fn cmd_for(&self, mut cmd: Command) -> Command {
        if let Some(t) = &self.s3 {
            t.apply(&mut cmd);
        }
        cmd.env("PGSAFE_REPO", &self.url)
            .env("PGSAFE_AUDIT_LOG", self.audit.path().join("audit.log"));
        cmd
    }

    fn backup(&self, db: &str, extra: &[&str]) -> String {
        let out = run(self
            .cmd()
            .args(["--json", "backup"])
            .args(extra)
            .env("DATABASE_URL", db_url(db)));
        out.assert_code(0);
        out.json()["backup_id"].as_str().unwrap().to_string()
    }

    /// `pgsafe restore ID --target <db>` with the given flags, confirmed and reasoned unless the
    /// flags say otherwise.
    fn restore(&self, id: &str, target: &str, flags: &[&str]) -> Run {
        let mut cmd = self.cmd();
        cmd.args(["restore", id, "--target", &db_url(target)]);
        if !flags.contains(&"--no-confirm") {
            cmd.args(["--confirm", target]);
        }
        if !flags.contains(&"--no-reason") {
            cmd.args(["--reason", "restore drill"]);
        }
        cmd.args(
            flags
                .iter()
                .filter(|f| !matches!(**f, "--no-confirm" | "--no-reason")),
        );
        run(&mut cmd)
    }
}

fn s3_targets() -> Vec<S3Target> {
    let mut t = vec![env().s3s.clone()];
    t.extend(garage().cloned());
    t
}

#[test]
fn strategy_a_into_a_new_database_on_each_server() {
    let source = fixture_db("ra_src");
    let expected = state_of(&source);
    for target in s3_targets() {
        let repo = Repo::s3(&target);
        let id = repo.backup(&source, &[]);
        let new_db = unique("ra_new");
        let out = repo.restore(&id, &new_db, &["--json"]);
        out.assert_code(0);
        let outcome = out.json();
        assert_eq!(outcome["result"], "ok");
        assert_eq!(outcome["integrity"]["ok"], true);
        assert!(
            outcome["safety_backup"].is_null(),
            "nothing to back up in a new database"
        );
        assert_same_state(&state_of(&new_db), &expected, target.name);
        drop_db(&new_db);
    }
    drop_db(&source);
}

#[test]
fn strategy_a_staged_over_an_existing_database_then_undo_and_safety_backup() {
    let db = fixture_db("ra_over");
    let repo = Repo::s3(garage().unwrap_or(&env().s3s));
    let id = repo.backup(&db, &["--tag", "v1.0.0"]);
    let backed_up = state_of(&db);

    // Production moves on after the backup.
    psql(&db, "DELETE FROM comments WHERE id % 3 = 0; CREATE TABLE added_later (x int); UPDATE users SET full_name = 'changed'");
    let modified = state_of(&db);
    assert_ne!(modified, backed_up);

    let out = repo.restore(&id, &db, &["--json", "--jobs", "2"]);
    out.assert_code(0);
    let outcome = out.json();
    assert_same_state(&state_of(&db), &backed_up, "db");
    let previous = outcome["previous_database"].as_str().unwrap().to_string();
    assert!(
        previous.starts_with(&format!("{db}__pgsafe_pre_")),
        "{previous}"
    );
    assert_same_state(
        &state_of(&previous),
        &modified,
        "the previous database is kept as it was",
    );
    assert!(
        databases_like(&format!("{db}__pgsafe_2")).is_empty(),
        "no staging copy left"
    );

    // The safety backup holds the pre-restore state and restores it.
    let safety = outcome["safety_backup"].as_str().unwrap().to_string();
    assert!(safety.ends_with("_pre-restore"), "{safety}");
    let copy = unique("ra_safety");
    repo.restore(&safety, &copy, &[]).assert_code(0);
    assert_same_state(&state_of(&copy), &modified, "copy");
    drop_db(&copy);

    // `latest` still means the release backup, not the safety backup.
    let shown = run(repo
        .cmd()
        .args(["--json", "show", "latest", "--database", &db]));
    assert_eq!(shown.json()["backup_id"], id.as_str());

    // Undo swaps the previous database back.
    let out = run(repo.cmd().args([
        "restore",
        "--undo",
        "--target",
        &db_url(&db),
        "--confirm",
        &db,
        "--reason",
        "undo drill",
    ]));
    out.assert_code(0);
    assert_same_state(&state_of(&db), &modified, "db");
    assert!(!database_exists(&previous));
    for leftover in databases_like(&format!("{db}__pgsafe_")) {
        drop_db(&leftover);
    }
    drop_db(&db);
}

#[test]
fn strategy_b_over_a_modified_database() {
    let db = fixture_db("rb");
    let repo = Repo::local();
    let id = repo.backup(&db, &[]);
    let backed_up = state_of(&db);
    psql(&db, "UPDATE tickets SET title = 'edited' WHERE id < 100; INSERT INTO users (email, full_name, password_hash) VALUES ('new@example.com', 'Nuevo', 'x')");
    let out = repo.restore(&id, &db, &["--strategy", "b", "--no-safety-backup"]);
    out.assert_code(0);
    assert!(out.stderr.contains("not-recommended"), "{}", out.stderr);
    assert_same_state(&state_of(&db), &backed_up, "db");
    // B only restores over an existing database.
    let missing = unique("rb_missing");
    let out = repo.restore(&id, &missing, &["--strategy", "b"]);
    out.assert_code(2);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(!database_exists(&missing));
    drop_db(&db);
}

#[test]
fn strategy_a_in_place_is_the_runbooks_drop_create_restore() {
    let db = fixture_db("rinplace");
    let repo = Repo::local();
    let id = repo.backup(&db, &[]);
    let backed_up = state_of(&db);
    psql(&db, "DROP TABLE attachments");
    repo.restore(&id, &db, &["--in-place"]).assert_code(0);
    assert_same_state(&state_of(&db), &backed_up, "db");
    assert!(databases_like(&format!("{db}__pgsafe_")).is_empty());
    drop_db(&db);
}

#[test]
fn corrupt_and_truncated_backups_are_refused_before_touching_the_target() {
    let db = fixture_db("rcorrupt");
    let repo = Repo::local();
    let id = repo.backup(&db, &[]);
    psql(&db, "DELETE FROM comments WHERE id < 10");
    let before = state_of(&db);
    let object = files_containing(std::path::Path::new(&repo.url), ".dump.zst")[0].clone();
    let original = std::fs::read(&object).unwrap();

    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    std::fs::write(&object, &flipped).unwrap();
    let out = repo.restore(&id, &db, &[]);
    out.assert_code(5);
    assert!(out.stderr.contains("checksum mismatch"), "{}", out.stderr);
    assert_same_state(&state_of(&db), &before, "db");

    std::fs::write(&object, &original[..original.len() - 1000]).unwrap();
    let out = repo.restore(&id, &db, &[]);
    out.assert_code(5);
    assert_same_state(&state_of(&db), &before, "db");
    assert!(databases_like(&format!("{db}__pgsafe_")).is_empty());
    // Refused and failed runs are in the audit record too.
    let audit = run(repo.cmd().args(["--json", "audit", "--database", &db]));
    audit.assert_code(0);
    let results: Vec<String> = audit
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(results, ["corrupt", "corrupt"]);
    drop_db(&db);
}

#[test]
fn every_interlock_refuses_and_lets_through_when_satisfied() {
    let db = fixture_db("rlocks");
    let repo = Repo::local();
    let id = repo.backup(&db, &[]);
    psql(
        &db,
        "INSERT INTO \"Audit Log\" (\"When\", \"What\") VALUES (now(), 'after the backup')",
    );
    let before = state_of(&db);
    let refused = |flags: &[&str], needle: &str| {
        let out = repo.restore(&id, &db, flags);
        out.assert_code(3);
        assert!(out.stderr.contains(needle), "{flags:?}: {}", out.stderr);
        assert!(out.stderr.contains("HINT:"), "{}", out.stderr);
        assert_same_state(
            &state_of(&db),
            &before,
            &format!("{flags:?} changed the target"),
        );
    };
    refused(
        &["--no-confirm", "--no-safety-backup"],
        "confirmation interlock",
    );
    {
        let mut cmd = repo.cmd();
        let out = run(cmd.args([
            "restore",
            &id,
            "--target",
            &db_url(&db),
            "--reason",
            "x",
            "--confirm",
            "wrong_name",
        ]));
        out.assert_code(3);
        assert!(out.stderr.contains("does not match"), "{}", out.stderr);
    }
    refused(&["--no-reason"], "documented decision interlock");
    refused(&["--protected", "rlocks*"], "protected target interlock");

    // Another session is connected: refused; --terminate-connections ends it.
    let lock = TableLock::hold(&db, "SELECT 1");
    refused(&[], "maintenance interlock");
    // A concurrent restore holds the advisory lock.
    let holder = TableLock::hold(
        "postgres",
        &format!("SELECT pg_advisory_lock(hashtext('pgsafe-restore'), hashtext('{db}'))"),
    );
    refused(
        &["--terminate-connections"],
        "one restore at a time interlock",
    );
    drop(holder);
    // ... or the repository's lock object.
    let lock_dir = std::path::Path::new(&repo.url).join("_locks");
    std::fs::create_dir_all(&lock_dir).unwrap();
    let lock_file = lock_dir.join("held.lock.json");
    let key = format!("127.0.0.1:{}_{db}", env().pg_port).replace(':', "-");
    std::fs::write(lock_dir.join(format!("{key}.lock.json")), b"{}").unwrap();
    refused(
        &["--terminate-connections"],
        "repository holds a restore lock",
    );
    std::fs::remove_file(lock_dir.join(format!("{key}.lock.json"))).unwrap();
    let _ = lock_file;

    // Satisfied: protected but allowed, sessions terminated.
    let out = repo.restore(
        &id,
        &db,
        &[
            "--protected",
            "rlocks*",
            "--allow-protected",
            "--terminate-connections",
        ],
    );
    out.assert_code(0);
    drop(lock);
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM \"Audit Log\" WHERE \"What\" = 'after the backup'"
        ),
        "0"
    );
    assert_eq!(
        psql(
            "postgres",
            &format!("SELECT datconnlimit FROM pg_database WHERE datname = '{db}'")
        ),
        "-1"
    );
    for leftover in databases_like(&format!("{db}__pgsafe_")) {
        drop_db(&leftover);
    }
    drop_db(&db);
}

#[test]
fn strategy_b_refuses_a_newer_schema() {
    let db = fixture_db("rmig");
    let repo = Repo::local();
    let id = repo.backup(&db, &[]);
    psql(
        &db,
        "INSERT INTO _sqlx_migrations VALUES (20260101, 'newer', now(), true, '\\x00', 1)",
    );
    let before = state_of(&db);
    let out = repo.restore(&id, &db, &["--strategy", "clean"]);
    out.assert_code(3);
    assert!(
        out.stderr.contains("schema migrations interlock"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("20260101"), "{}", out.stderr);
    assert_same_state(&state_of(&db), &before, "db");
    repo.restore(
        &id,
        &db,
        &[
            "--strategy",
            "clean",
            "--allow-newer-migrations",
            "--no-safety-backup",
        ],
    )
    .assert_code(0);
    assert_eq!(
        psql(&db, "SELECT max(version) FROM _sqlx_migrations"),
        "20250610"
    );
    drop_db(&db);
}

/// An archive with a grant to a role the target lacks fails at the end of pg_restore.
#[test]
fn pg_restore_failing_midway_leaves_the_target_as_it_was() {
    let db = fixture_db("rfail");
    let role = unique("gone_role");
    psql("postgres", &format!("CREATE ROLE {role}"));
    psql(&db, &format!("GRANT SELECT ON tickets TO {role}"));
    let repo = Repo::local();
    let id = repo.backup(&db, &["--with-acl"]);
    psql(&db, &format!("REVOKE ALL ON tickets FROM {role}"));
    psql("postgres", &format!("DROP ROLE {role}"));
    psql(&db, "DELETE FROM comments WHERE id < 100");
    let before = state_of(&db);

    let out = repo.restore(&id, &db, &["--with-acl", "--no-safety-backup"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("pg_restore exited with status 1"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("does not exist"),
        "pg_restore's stderr is shown: {}",
        out.stderr
    );
    assert_same_state(&state_of(&db), &before, "staged A touched the original");
    assert!(
        databases_like(&format!("{db}__pgsafe_")).is_empty(),
        "half-restored copy left"
    );

    let out = repo.restore(
        &id,
        &db,
        &["--with-acl", "--no-safety-backup", "--strategy", "b"],
    );
    out.assert_code(1);
    assert_same_state(&state_of(&db), &before, "Strategy B did not roll back");
    drop_db(&db);
}

#[test]
fn integrity_check_catches_tampering() {
    let db = fixture_db("rcheck");
    let repo = Repo::local();
    let id = repo.backup(&db, &[]);
    let smoke = [
        "--smoke-sql",
        "SELECT count(*) > 0 FROM users WHERE role = 'ADMIN'",
        "--smoke-sql",
        "SELECT count(*) > 0 FROM open_tickets",
    ];
    let check = |expect: i32, needle: &str| {
        let out = run(repo
            .cmd()
            .args(["check", "--target", &db_url(&db), "--backup", &id])
            .args(smoke));
        out.assert_code(expect);
        assert!(out.stdout.contains(needle), "{}", out.stdout);
    };
    check(0, "ok");
    psql(&db, "DELETE FROM comments WHERE id = 17");
    check(4, "comments: 8999 rows, the backup has 9000");
    psql(&db, "INSERT INTO comments (id, ticket_id, author_id, body, created_at) VALUES (17, 1, 1, 'x', now()); DROP INDEX tickets_metadata_idx");
    check(4, "INDEX public.tickets_metadata_idx");
    psql(&db, "DROP TABLE \"Audit Log\"");
    check(4, "Audit Log is missing");
    psql(&db, "UPDATE users SET role = 'AGENT' WHERE role = 'ADMIN'");
    let out = run(repo
        .cmd()
        .args(["--json", "check", "--target", &db_url(&db), "--backup", &id])
        .args(smoke));
    out.assert_code(4);
    let smoke_failed = out.json()["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["check"] == "smoke" && c["ok"] == false);
    assert!(smoke_failed, "{}", out.stdout);
    drop_db(&db);
}

#[test]
fn sigint_during_a_restore_leaves_the_target_untouched() {
    let db = large_db("rsigint", 10);
    let repo = Repo::local();
    let id = repo.backup(&db, &[]);
    psql(&db, "DELETE FROM comments WHERE id % 2 = 0");
    let before = state_of(&db);
    for strategy in ["fresh", "clean"] {
        let mut cmd = repo.cmd();
        cmd.args([
            "restore",
            &id,
            "--target",
            &db_url(&db),
            "--confirm",
            &db,
            "--reason",
            "sigint drill",
            "--no-safety-backup",
            "--jobs",
            "1",
        ])
        .args(["--strategy", strategy, "--allow-newer-migrations"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        wait_until("pg_restore to run", 60, || {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("{strategy}: pgsafe ended ({status}) before pg_restore ran: {err}");
            }
            children_of(pid).iter().any(|(_, n)| n == "pg_restore")
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{strategy}: {stderr}");
        assert!(children_of(pid).is_empty());
        assert_same_state(&state_of(&db), &before, strategy);
        assert!(
            databases_like(&format!("{db}__pgsafe_")).is_empty(),
            "{strategy}: copy left"
        );
    }
    drop_db(&db);
}

#[test]
fn download_writes_a_verified_archive_for_plain_pg_restore() {
    let db = fixture_db("rdl");
    let repo = Repo::local();
    let id = repo.backup(&db, &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gestor.dump");
    let out = run(repo
        .cmd()
        .args(["--json", "download", &id, "-o"])
        .arg(&file));
    out.assert_code(0);
    let data = std::fs::read(&file).unwrap();
    assert_eq!(out.json()["sha256"], sha256_hex(&data));
    let copy = unique("rdl_copy");
    pg_restore_into(&data, &copy);
    assert_eq!(contents_of(&copy), contents_of(&db));
    let again = run(repo.cmd().args(["download", &id, "-o"]).arg(&file));
    again.assert_code(2);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "work files left beside the output"
    );
    drop_db(&copy);
    drop_db(&db);
}

#[test]
fn dry_run_changes_nothing_and_audit_records_everything() {
    let db = fixture_db("raudit");
    let repo = Repo::local();
    let id = repo.backup(&db, &[]);
    let before = state_of(&db);
    let out = repo.restore(&id, &db, &["--dry-run", "--no-confirm"]);
    out.assert_code(0);
    assert!(out.stdout.contains("nothing was changed"), "{}", out.stdout);
    assert_same_state(&state_of(&db), &before, "db");
    repo.restore(&id, &db, &["--no-reason"]).assert_code(3);
    repo.restore(&id, &db, &["--approved-by", "jefa de guardia"])
        .assert_code(0);
    let audit = run(repo.cmd().args(["--json", "audit", "--database", &db]));
    audit.assert_code(0);
    let records = audit.json();
    let records = records.as_array().unwrap();
    let results: Vec<&str> = records
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["dry-run", "refused", "ok"]);
    let ok = &records[2];
    assert_eq!(ok["approved_by"], "jefa de guardia");
    assert_eq!(ok["reason"], "restore drill");
    assert_eq!(ok["backup_id"], id.as_str());
    assert!(ok["target"].as_str().unwrap().contains(":***@"));
    let steps: Vec<&str> = ok["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    for s in [
        "decision",
        "resolve",
        "fetch",
        "preflight",
        "interlocks",
        "safety backup",
        "pg_restore",
        "integrity",
        "swap",
    ] {
        assert!(steps.contains(&s), "step {s} missing from {steps:?}");
    }
    let local = std::fs::read_to_string(repo.audit.path().join("audit.log")).unwrap();
    assert_eq!(local.lines().count(), 3);
    assert!(!local.contains(&env().pg_password));
    for leftover in databases_like(&format!("{db}__pgsafe_")) {
        drop_db(&leftover);
    }
    drop_db(&db);
}

/// The same refusal when the object is damaged inside S3 (s3s-fs and Garage).
#[test]
fn a_flipped_byte_in_s3_is_refused_on_each_server() {
    let db = fixture_db("rs3corrupt");
    let before = state_of(&db);
    for target in s3_targets() {
        let repo = Repo::s3(&target);
        let out = run(repo
            .cmd()
            .args(["--json", "backup"])
            .env("DATABASE_URL", db_url(&db)));
        out.assert_code(0);
        let summary = out.json();
        let id = summary["backup_id"].as_str().unwrap();
        let prefix = repo
            .url
            .trim_start_matches(&format!("s3://{}/", target.bucket))
            .to_string();
        let key = format!("{prefix}/{}", summary["object_key"].as_str().unwrap());
        let mut data = target.get(&key);
        data[100] ^= 0x80;
        target.put(&key, data);
        let out = repo.restore(id, &db, &[]);
        out.assert_code(5);
        assert!(
            out.stderr.contains("checksum mismatch"),
            "{}: {}",
            target.name,
            out.stderr
        );
        assert_same_state(&state_of(&db), &before, target.name);
        let out = run(repo
            .cmd()
            .args(["download", id, "-o", "/tmp/pgsafe-should-not-exist.dump"]));
        out.assert_code(5);
        assert!(!std::path::Path::new("/tmp/pgsafe-should-not-exist.dump").exists());
    }
    drop_db(&db);
}

/// What pg_dump does not carry (database settings and grants) survives both Strategy A paths.
#[test]
fn database_settings_and_grants_survive_strategy_a() {
    let db = fixture_db("rstate");
    let role = unique("app_role");
    psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
    for sql in [
        format!("ALTER DATABASE \"{db}\" SET search_path = app, public"),
        format!("ALTER DATABASE \"{db}\" SET statement_timeout = '5min'"),
        format!("ALTER ROLE {role} IN DATABASE \"{db}\" SET work_mem = '64MB'"),
        format!("REVOKE CONNECT ON DATABASE \"{db}\" FROM PUBLIC"),
        format!("GRANT CONNECT ON DATABASE \"{db}\" TO {role}"),
    ] {
        psql("postgres", &sql);
    }
    let state = |db: &str| {
        psql(
            "postgres",
            &format!(
                "SELECT coalesce((SELECT string_agg(coalesce(r.rolname, '*') || ':' || array_to_string(s.setconfig, ';'), ' | ' ORDER BY 1)
                                    FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
                                    LEFT JOIN pg_roles r ON r.oid = s.setrole WHERE d.datname = '{db}'), '')
                        || ' acl ' || (SELECT array_to_string(ARRAY(SELECT a::text FROM unnest(datacl) a ORDER BY 1), ',') FROM pg_database WHERE datname = '{db}')"
            ),
        )
    };
    let before = state(&db);
    assert!(before.contains("search_path=app, public"), "{before}");
    let repo = Repo::local();
    let id = repo.backup(&db, &[]);
    repo.restore(&id, &db, &["--no-safety-backup"])
        .assert_code(0);
    assert_eq!(state(&db), before, "staged swap lost database state");
    repo.restore(&id, &db, &["--no-safety-backup", "--in-place"])
        .assert_code(0);
    assert_eq!(state(&db), before, "in-place restore lost database state");
    for leftover in databases_like(&format!("{db}__pgsafe_")) {
        drop_db(&leftover);
    }
    drop_db(&db);
    psql("postgres", &format!("DROP ROLE {role}"));
}

/// On a terminal, without --confirm, the operator types the target's name.
#[test]
fn on_a_terminal_the_operator_types_the_name() {
    use std::io::Write;
    let db = fixture_db("rtty");
    let repo = Repo::local();
    let id = repo.backup(&db, &[]);
    let typed = |name: &str| {
        let line = format!(
            "{} restore {id} --target '{}' --reason 'tty drill' --no-safety-backup",
            env!("CARGO_BIN_EXE_pgsafe"),
            db_url(&db)
        );
        // `script` gives pgsafe a pseudo-terminal and types what we write on its stdin.
        let mut cmd = repo.script();
        let mut child = cmd
            .args(["-qec", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.as_mut().unwrap(), "{name}").unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, screen) = typed("not_the_name");
    assert_eq!(code, Some(3), "{screen}");
    assert!(screen.contains("Type its name to confirm"), "{screen}");
    assert!(screen.contains("does not match"), "{screen}");
    let (code, screen) = typed(&db);
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("complete"), "{screen}");
    for leftover in databases_like(&format!("{db}__pgsafe_")) {
        drop_db(&leftover);
    }
    drop_db(&db);
}
