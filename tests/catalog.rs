//! `list` and `show`: backups come from manifests only; what failed runs left is listed apart.

mod common;

use common::*;

fn backup_into(dir: &std::path::Path, db: &str, tag: Option<&str>) -> serde_json::Value {
    let mut cmd = pgsafe();
    cmd.args(["--json", "backup", "--repo"])
        .arg(dir)
        .env("DATABASE_URL", db_url(db));
    if let Some(tag) = tag {
        cmd.args(["--tag", tag]);
    }
    let out = run(&mut cmd);
    out.assert_code(0);
    out.json()
}

#[test]
fn list_and_show_read_manifests_and_set_leftovers_apart() {
    let db = fixture_db("catalog");
    let other = fixture_db("catalog_other");
    let dir = tempfile::tempdir().unwrap();
    let first = backup_into(dir.path(), &db, Some("v1.0.0"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = backup_into(dir.path(), &db, None);
    backup_into(dir.path(), &other, None);

    // Leftovers a crashed run could leave: an object without manifest, a partial upload, and a
    // manifest that does not parse.
    let d = dir.path().join(&db);
    std::fs::write(
        d.join(format!("2020-01-01T000000Z_{db}.dump.zst")),
        b"orphan",
    )
    .unwrap();
    std::fs::write(
        d.join(format!(".2020-01-02T000000Z_{db}.dump.zst.partial-abc123")),
        b"half",
    )
    .unwrap();
    std::fs::write(
        d.join(format!("2020-01-03T000000Z_{db}.manifest.json")),
        b"{not json",
    )
    .unwrap();

    let listed = run(pgsafe()
        .args(["--json", "list", "--database", &db, "--repo"])
        .arg(dir.path()));
    listed.assert_code(0);
    let listed = listed.json();
    let ids: Vec<&str> = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backup_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            first["backup_id"].as_str().unwrap(),
            second["backup_id"].as_str().unwrap()
        ]
    );
    let mut kinds: Vec<&str> = listed["incomplete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "invalid manifest",
            "multipart upload",
            "object without manifest"
        ]
    );

    // All databases, human table.
    let all = run(pgsafe().args(["list", "--repo"]).arg(dir.path()));
    all.assert_code(0);
    assert!(all.stdout.starts_with("ID "), "{}", all.stdout);
    assert!(all.stdout.contains(&other), "{}", all.stdout);
    assert!(
        all.stdout.contains("incomplete (not backups"),
        "{}",
        all.stdout
    );
    assert_eq!(
        all.stdout
            .lines()
            .filter(|l| l.contains(&format!("_{db}")))
            .count(),
        2 + 3
    );

    // latest is the newest complete backup of that database.
    let latest = run(pgsafe()
        .args(["--json", "show", "latest", "--database", &db, "--repo"])
        .arg(dir.path()));
    latest.assert_code(0);
    assert_eq!(latest.json()["backup_id"], second["backup_id"]);
    let by_id = run(pgsafe()
        .args(["show", first["backup_id"].as_str().unwrap(), "--repo"])
        .arg(dir.path()));
    by_id.assert_code(0);
    assert!(
        by_id.stdout.contains("tag         v1.0.0"),
        "{}",
        by_id.stdout
    );
    assert!(by_id.stdout.contains("public.tickets"), "{}", by_id.stdout);
    assert!(
        by_id.stdout.contains(":***@"),
        "source is shown redacted: {}",
        by_id.stdout
    );

    // `latest` needs a database; unknown, partial and invalid backups are "corrupt" (5).
    run(pgsafe().args(["show", "latest", "--repo"]).arg(dir.path())).assert_code(2);
    let missing = run(pgsafe()
        .args(["show", "2020-01-01T000000Z_nothing", "--repo"])
        .arg(dir.path()));
    missing.assert_code(5);
    assert!(
        missing.stderr.contains("no manifest has that ID"),
        "{}",
        missing.stderr
    );
    let orphan = run(pgsafe()
        .args(["show", &format!("2020-01-01T000000Z_{db}"), "--repo"])
        .arg(dir.path()));
    orphan.assert_code(5);
    assert!(
        orphan.stderr.contains("never completed"),
        "{}",
        orphan.stderr
    );
    let invalid = run(pgsafe()
        .args(["show", &format!("2020-01-03T000000Z_{db}"), "--repo"])
        .arg(dir.path()));
    invalid.assert_code(5);
    assert!(
        invalid.stderr.contains("is not valid"),
        "{}",
        invalid.stderr
    );
    let none = run(pgsafe()
        .args(["show", "latest", "--database", "nobody", "--repo"])
        .arg(dir.path()));
    none.assert_code(5);

    for d in [&db, &other] {
        psql("postgres", &format!("DROP DATABASE \"{d}\""));
    }
}

#[test]
fn list_on_s3_and_an_empty_repository() {
    let mut targets = vec![env().s3s.clone()];
    targets.extend(garage().cloned());
    for t in targets {
        let prefix = unique("emptylist");
        let out = run(t
            .apply(&mut pgsafe())
            .args(["list", "--repo", &t.repo(&prefix)]));
        out.assert_code(0);
        assert!(out.stdout.contains("no backups in s3://"), "{}", out.stdout);
        // A manifest uploaded by hand that lies about its backup is not a backup.
        t.put(
            &format!("{prefix}/db/2020-01-01T000000Z_db.manifest.json"),
            br#"{"schema_version": 99}"#.to_vec(),
        );
        let out = run(t
            .apply(&mut pgsafe())
            .args(["--json", "list", "--repo", &t.repo(&prefix)]));
        out.assert_code(0);
        let json = out.json();
        assert_eq!(json["backups"].as_array().unwrap().len(), 0);
        assert!(json["incomplete"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("newer than this pgsafe reads"));
    }
}
