//! End-to-end backups of the ticket fixture into a local directory, s3s-fs and Garage.

mod common;

use common::*;
use serde_json::Value;

/// What a test reads back from a repository, independently of pgsafe's own code.
enum Repo {
    Local(tempfile::TempDir),
    S3(S3Target, String),
}

impl Repo {
    fn url(&self) -> String {
        match self {
            Repo::Local(dir) => dir.path().display().to_string(),
            Repo::S3(t, prefix) => t.repo(prefix),
        }
    }

    fn command(&self) -> std::process::Command {
        let mut cmd = pgsafe();
        if let Repo::S3(t, _) = self {
            t.apply(&mut cmd);
        }
        cmd
    }

    fn read(&self, key: &str) -> Vec<u8> {
        match self {
            Repo::Local(dir) => std::fs::read(dir.path().join(key)).unwrap(),
            Repo::S3(t, prefix) => t.get(&format!("{prefix}/{key}")),
        }
    }
}

fn check_backup_roundtrip(repo: Repo, compression: &str) {
    let db = fixture_db("roundtrip");
    let source_counts = table_counts(&db);

    let out = run(repo
        .command()
        .args(["--json", "backup", "--repo", &repo.url(), "--tag", "v1.0.0"])
        .args(["--compression", compression])
        .args(["--database-url", &db_url(&db)]));
    out.assert_code(0);
    let summary = out.json();
    let id = summary["backup_id"].as_str().unwrap();
    assert!(id.ends_with(&format!("_{db}_v1.0.0")), "{id}");
    let object_key = summary["object_key"].as_str().unwrap();
    let ext = match compression {
        "zstd" => ".dump.zst",
        "gzip" => ".dump.gz",
        _ => ".dump",
    };
    assert_eq!(object_key, format!("{db}/{id}{ext}"));

    // The manifest is there, and describes the object we fetch ourselves.
    let manifest: Value =
        serde_json::from_slice(&repo.read(summary["manifest_key"].as_str().unwrap())).unwrap();
    assert_eq!(manifest["schema_version"], 1);
    assert_eq!(manifest["database"], db.as_str());
    assert_eq!(manifest["tag"], "v1.0.0");
    assert_eq!(manifest["object"]["compression"]["algorithm"], compression);
    assert_eq!(manifest["server"]["encoding"], "UTF8");
    assert!(manifest["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "pgcrypto"));
    let stored = repo.read(object_key);
    assert_eq!(manifest["object"]["bytes"], stored.len() as u64);
    assert_eq!(manifest["object"]["sha256"], sha256_hex(&stored));

    // Decompressed, it is the archive the manifest describes, and pg_restore reads it.
    let archive = decompress(compression, &stored);
    assert_eq!(manifest["archive"]["sha256"], sha256_hex(&archive));
    assert_eq!(manifest["archive"]["bytes"], archive.len() as u64);
    let toc = pg_restore_list(&archive);
    for needle in [
        "TABLE public users",
        "TABLE public Audit Log",
        "VIEW public open_tickets",
        "FUNCTION public touch_updated_at",
        "SEQUENCE public ticket_reference_seq",
        "TYPE public user_role",
        "INDEX public tickets_metadata_idx",
    ] {
        assert!(
            toc.contains(needle),
            "{needle} missing from the archive's TOC:\n{toc}"
        );
    }
    // --no-owner --no-acl, as in the runbook.
    assert!(!toc.contains(" ACL "), "the archive holds ACLs:\n{toc}");

    // Row counts equal the source's, table by table.
    let manifest_counts: Vec<(String, i64)> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                format!(
                    "{}.{}",
                    t["schema"].as_str().unwrap(),
                    t["name"].as_str().unwrap()
                ),
                t["rows"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(manifest_counts, source_counts);

    // And the archive restores with plain pg_restore into a database holding the same rows.
    let copy = unique("restored");
    pg_restore_into(&archive, &copy);
    assert_eq!(table_counts(&copy), source_counts);

    // list and show find it from its manifest.
    let listed =
        run(repo
            .command()
            .args(["--json", "list", "--repo", &repo.url(), "--database", &db]));
    listed.assert_code(0);
    let listed = listed.json();
    assert_eq!(listed["backups"].as_array().unwrap().len(), 1);
    assert_eq!(listed["backups"][0]["backup_id"], id);
    let shown = run(repo.command().args([
        "--json",
        "show",
        "latest",
        "--database",
        &db,
        "--repo",
        &repo.url(),
    ]));
    shown.assert_code(0);
    assert_eq!(
        shown.json()["object"]["sha256"],
        manifest["object"]["sha256"]
    );

    psql("postgres", &format!("DROP DATABASE \"{copy}\""));
    psql("postgres", &format!("DROP DATABASE \"{db}\""));
}

#[test]
fn backup_to_local_directory() {
    check_backup_roundtrip(Repo::Local(tempfile::tempdir().unwrap()), "zstd");
}

#[test]
fn backup_to_local_directory_gzip_and_none() {
    check_backup_roundtrip(Repo::Local(tempfile::tempdir().unwrap()), "gzip");
    check_backup_roundtrip(Repo::Local(tempfile::tempdir().unwrap()), "none");
}

#[test]
fn backup_to_s3s_fs() {
    check_backup_roundtrip(Repo::S3(env().s3s.clone(), unique("rt")), "zstd");
}

#[test]
fn backup_to_garage() {
    if let Some(garage) = garage() {
        check_backup_roundtrip(Repo::S3(garage.clone(), unique("rt")), "zstd");
    }
}

/// Several parts in flight, on both servers: a multi-part object reassembles byte for byte.
#[test]
fn multipart_backup_of_a_larger_database() {
    let db = large_db("multipart", 20);
    let mut targets = vec![env().s3s.clone()];
    targets.extend(garage().cloned());
    for target in targets {
        let prefix = unique("mp");
        let repo = Repo::S3(target.clone(), prefix.clone());
        let out = run(repo
            .command()
            .args([
                "--json",
                "backup",
                "--repo",
                &repo.url(),
                "--database-url",
                &db_url(&db),
            ])
            .args([
                "--compression",
                "none",
                "--part-size-mib",
                "6",
                "--parts-in-flight",
                "3",
            ]));
        out.assert_code(0);
        let summary = out.json();
        assert!(
            summary["stored_bytes"].as_u64().unwrap() > 3 * 6 * 1024 * 1024,
            "not multi-part"
        );
        let stored = repo.read(summary["object_key"].as_str().unwrap());
        assert_eq!(summary["sha256"], sha256_hex(&stored), "on {}", target.name);
        pg_restore_list(&stored);
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

/// The runbook's flags are defaults; --with-owner / --with-acl keep ownership and privileges.
#[test]
fn owner_and_acl_on_request() {
    let db = fixture_db("acl");
    psql(&db, "GRANT SELECT ON tickets TO PUBLIC");
    let dir = tempfile::tempdir().unwrap();
    let out = run(pgsafe()
        .args(["--json", "backup", "--with-owner", "--with-acl", "--repo"])
        .arg(dir.path())
        .args(["--database-url", &db_url(&db)]));
    out.assert_code(0);
    let summary = out.json();
    let stored = std::fs::read(dir.path().join(summary["object_key"].as_str().unwrap())).unwrap();
    let toc = pg_restore_list(&decompress("zstd", &stored));
    assert!(toc.contains("ACL public TABLE tickets"), "{toc}");
    psql("postgres", &format!("DROP DATABASE \"{db}\""));
}
