//! `pgsafe verify` against a real PostgreSQL (the staging server of the restore drills) and real
//! S3 servers: good backups verify, corrupt ones exit 5, a restorable but wrong one exits 4, the
//! scratch database is gone afterwards in every case (Ctrl-C included), and every result is
//! recorded beside the backup where `list` and `show` read it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// Scratch databases of restore drills.
const SCRATCH: &str = "pgsafe_verify_";

struct Repo {
    url: String,
    s3: Option<S3Target>,
    _dir: Option<tempfile::TempDir>,
}

impl Repo {
    fn local() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        Repo {
            url: dir.path().display().to_string(),
            s3: None,
            _dir: Some(dir),
        }
    }

    fn s3(target: &S3Target) -> Repo {
        Repo {
            url: target.repo(&unique("verify")),
            s3: Some(target.clone()),
            _dir: None,
        }
    }

    fn cmd(&self) -> Command {
        let mut cmd = pgsafe();
        if let Some(t) = &self.s3 {
            t.apply(&mut cmd);
        }
        cmd.env("PGSAFE_REPO", &self.url);
        cmd
    }

    fn backup(&self, db: &str) -> String {
        let out = run(self
            .cmd()
            .args(["--json", "backup"])
            .env("DATABASE_URL", db_url(db)));
        out.assert_code(0);
        out.json()["backup_id"].as_str().unwrap().to_string()
    }

    fn verify(&self, args: &[&str]) -> Run {
        run(self.cmd().args(["--json", "verify"]).args(args))
    }

    fn path(&self, db: &str, suffix: &str) -> PathBuf {
        let found = files_containing(&Path::new(&self.url).join(db), suffix);
        assert_eq!(found.len(), 1, "{suffix} under {db}: {found:?}");
        found[0].clone()
    }
}

/// Scratch databases of drills of `db`'s backups (their names carry the database's first 24
/// characters, which the tests' unique names keep apart).
fn scratch_of(db: &str) -> Vec<String> {
    databases_like(&format!("{SCRATCH}{}", &db[..db.len().min(24)]))
}

fn staging() -> String {
    env().pg_url.clone()
}

#[test]
fn a_good_backup_verifies_with_and_without_a_server_and_the_result_is_recorded() {
    let db = fixture_db("vgood");
    for repo in [Repo::local(), Repo::s3(&env().s3s)]
        .into_iter()
        .chain(garage().map(Repo::s3))
    {
        let id = repo.backup(&db);
        let out = repo.verify(&[&id]);
        out.assert_code(0);
        let r = &out.json()[0];
        assert_eq!(r["ok"], true, "{}", out.stdout);
        assert_eq!(r["level"], "archive");

        let out = repo.verify(&["latest", "--database", &db, "--restore-to", &staging()]);
        out.assert_code(0);
        let r = &out.json()[0];
        assert_eq!(r["level"], "restore");
        assert_eq!(r["result"], "verified");
        let scratch = r["scratch_database"].as_str().unwrap();
        assert!(scratch.starts_with(SCRATCH), "{scratch}");
        assert!(
            !database_exists(scratch),
            "the scratch database {scratch} is left"
        );
        assert!(r["checks_run"].as_u64().unwrap() > 0);
        let steps: Vec<&str> = r["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap())
            .collect();
        for step in ["pg_restore", "integrity check", "drop scratch database"] {
            assert!(steps.contains(&step), "{steps:?}");
        }
        // The staging server's password never reaches the record or the output.
        assert!(!out.stdout.contains(&env().pg_password));
        assert!(!out.stderr.contains(&env().pg_password));

        // list and show read the verified state from the repository.
        let listed = run(repo.cmd().args(["--json", "list", "--database", &db]));
        listed.assert_code(0);
        let row = &listed.json()["backups"][0];
        assert_eq!(row["verified_level"], "restore", "{}", listed.stdout);
        assert!(row["verified_at"].as_str().unwrap().starts_with("20"));
        let shown = run(repo.cmd().args(["--json", "show", &id]));
        shown.assert_code(0);
        let shown = shown.json();
        assert_eq!(shown["verified"]["level"], "restore");
        assert_eq!(shown["verifications"].as_array().unwrap().len(), 2);
        let human = run(repo.cmd().args(["show", &id]));
        assert!(human.stdout.contains("verified    20"), "{}", human.stdout);
    }
    drop_db(&db);
}

#[test]
fn a_flipped_byte_and_a_truncated_object_exit_5_and_leave_no_scratch_database() {
    let db = fixture_db("vcorrupt");
    let repo = Repo::local();
    let id = repo.backup(&db);
    let object = repo.path(&db, ".dump.zst");
    let original = std::fs::read(&object).unwrap();

    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    std::fs::write(&object, &flipped).unwrap();
    for extra in [&[][..], &["--restore-to", &staging()][..]] {
        let out = repo.verify(&[&[id.as_str()][..], extra].concat());
        out.assert_code(5);
        assert!(out.stderr.contains("checksum mismatch"), "{}", out.stderr);
        assert_eq!(out.json()[0]["result"], "corrupt");
    }

    std::fs::write(&object, &original[..original.len() - 4096]).unwrap();
    let out = repo.verify(&[&id, "--restore-to", &staging()]);
    out.assert_code(5);
    assert!(scratch_of(&db).is_empty(), "a scratch database is left");

    // Every failure is recorded too: show says when the last check failed, and list does not
    // call the backup verified.
    let shown = run(repo.cmd().args(["--json", "show", &id]));
    let shown = shown.json();
    let results: Vec<&str> = shown["verifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["corrupt", "corrupt", "corrupt"]);
    assert!(shown["verified"].is_null());
    let human = run(repo.cmd().args(["show", &id]));
    assert!(
        human.stdout.contains("verified    never"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("FAILED"), "{}", human.stdout);

    let listed = run(repo.cmd().args(["list"]));
    assert!(
        listed.stdout.contains("FAILED (corrupt)"),
        "{}",
        listed.stdout
    );
    let listed = run(repo.cmd().args(["--json", "list"])).json();
    assert_eq!(listed["backups"][0]["last_check"], "corrupt");

    // Put back, it verifies again.
    std::fs::write(&object, &original).unwrap();
    repo.verify(&[&id]).assert_code(0);
    let listed = run(repo.cmd().args(["--json", "list"])).json();
    assert_eq!(listed["backups"][0]["last_check"], "verified");
    assert_eq!(listed["backups"][0]["verified_level"], "archive");
    drop_db(&db);
}

#[test]
fn a_restorable_but_wrong_backup_exits_4() {
    let db = fixture_db("vwrong");
    let repo = Repo::local();
    let id = repo.backup(&db);
    // The manifest claims one row more in tickets than the archive holds.
    let path = repo.path(&db, ".manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for t in manifest["tables"].as_array_mut().unwrap() {
        if t["name"] == "tickets" {
            t["rows"] = (t["rows"].as_i64().unwrap() + 1).into();
        }
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();

    // Checksums and the table of contents cannot see it...
    repo.verify(&[&id]).assert_code(0);
    // ...a restore drill does.
    let out = repo.verify(&[&id, "--restore-to", &staging()]);
    out.assert_code(4);
    let r = &out.json()[0];
    assert_eq!(r["result"], "integrity failed");
    let failed = r["failed_checks"].as_array().unwrap();
    assert!(
        failed
            .iter()
            .any(|c| c.as_str().unwrap().contains("tickets")),
        "{failed:?}"
    );
    assert!(!database_exists(r["scratch_database"].as_str().unwrap()));
    assert!(scratch_of(&db).is_empty());

    // A failing smoke check is an integrity failure too.
    let good = repo.backup(&db);
    let out = repo.verify(&[
        &good,
        "--restore-to",
        &staging(),
        "--smoke-sql",
        "SELECT count(*) > 0 FROM users WHERE role = 'ADMIN'",
        "--smoke-sql",
        "SELECT count(*) = 0 FROM tickets",
    ]);
    out.assert_code(4);
    assert!(scratch_of(&db).is_empty());
    drop_db(&db);
}

#[test]
fn verify_all_checks_every_backup_and_reports_the_worst() {
    let db = fixture_db("vall");
    let repo = Repo::local();
    let first = repo.backup(&db);
    // Back to back: the second waits for the next second rather than fail on the same ID.
    let second = repo.backup(&db);
    let out = repo.verify(&["--all", "--database", &db]);
    out.assert_code(0);
    assert_eq!(out.json().as_array().unwrap().len(), 2);

    // Corrupt the first: --all still checks the second, and exits 5.
    let object = files_containing(&Path::new(&repo.url).join(&db), &first)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".dump.zst"))
        .unwrap();
    let mut data = std::fs::read(&object).unwrap();
    data[100] ^= 1;
    std::fs::write(&object, data).unwrap();
    let out = repo.verify(&["--all", "--database", &db]);
    out.assert_code(5);
    let results: Vec<(String, String)> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["backup_id"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            (first, "corrupt".to_string()),
            (second, "verified".to_string())
        ]
    );
    assert!(out.stderr.contains("1 of 2") || out.stderr.contains("checksum"));
    drop_db(&db);
}

#[test]
fn ctrl_c_during_a_restore_drill_drops_the_scratch_database() {
    let db = large_db("vsigint", 10);
    let repo = Repo::local();
    let id = repo.backup(&db);
    let mut child = repo
        .cmd()
        .args(["verify", &id, "--restore-to", &staging(), "--jobs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until("the drill's pg_restore to run", 60, || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pgsafe ended ({status}) before pg_restore ran");
        }
        // pg_restore --list reads the archive first; the restore runs once the scratch
        // database exists.
        children_of(pid).iter().any(|(_, n)| n == "pg_restore") && scratch_of(&db).len() == 1
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(children_of(pid).is_empty(), "a child of pgsafe is left");
    assert!(scratch_of(&db).is_empty(), "the scratch database is left");
    let shown = run(repo.cmd().args(["--json", "show", &id])).json();
    assert_eq!(shown["verifications"][0]["result"], "interrupted");
    drop_db(&db);
}

#[test]
fn verify_without_a_backup_or_staging_server_says_what_to_do() {
    let repo = Repo::local();
    let out = repo.verify(&["latest", "--database", "nothing_here"]);
    out.assert_code(5);
    assert!(out.stderr.contains("no complete backup"), "{}", out.stderr);
    let out = run(repo
        .cmd()
        .args(["verify", "--drill", "latest", "--database", "x"]));
    out.assert_code(2);
    assert!(out.stderr.contains("staging server"), "{}", out.stderr);
}
