//! `pgsafe prune` on a synthetic year of backups of two databases, in a local repository and on
//! real S3 servers. The history is made of copies of one real backup, each under its own dated
//! ID and manifest, so every backup in it verifies and restores; only the times are synthetic.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::*;
use serde_json::Value;

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

fn id_of(t: DateTime<Utc>, db: &str, tag: Option<&str>) -> String {
    let mut id = format!("{}_{db}", t.format("%Y-%m-%dT%H%M%SZ"));
    if let Some(tag) = tag {
        id.push('_');
        id.push_str(tag);
    }
    id
}

/// One real backup's manifest and object, to copy under synthetic times.
struct Template {
    manifest: Value,
    object: Vec<u8>,
}

impl Template {
    /// Takes a real backup of `db` into a scratch local repository.
    fn of(db: &str) -> Template {
        let dir = tempfile::tempdir().unwrap();
        run(pgsafe()
            .args(["backup", "--repo"])
            .arg(dir.path())
            .env("DATABASE_URL", db_url(db)))
        .assert_code(0);
        let manifest = files_containing(dir.path(), ".manifest.json")[0].clone();
        let object = files_containing(dir.path(), ".dump.zst")[0].clone();
        Template {
            manifest: serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap(),
            object: std::fs::read(object).unwrap(),
        }
    }

    /// The manifest of a copy taken at `t`, and its (object key, manifest key, id).
    fn copy(&self, t: DateTime<Utc>, tag: Option<&str>) -> (String, String, String, Vec<u8>) {
        let db = self.manifest["database"].as_str().unwrap();
        let id = id_of(t, db, tag);
        let mut m = self.manifest.clone();
        let object_key = format!("{db}/{id}.dump.zst");
        m["backup_id"] = id.clone().into();
        m["tag"] = tag.map(Value::from).unwrap_or(Value::Null);
        m["started_at"] = t.to_rfc3339().into();
        m["finished_at"] = (t + Duration::seconds(1)).to_rfc3339().into();
        m["object"]["key"] = object_key.clone().into();
        (
            object_key,
            format!("{db}/{id}.manifest.json"),
            id,
            serde_json::to_vec_pretty(&m).unwrap(),
        )
    }

    /// Writes a copy into a local repository; returns its ID.
    fn write_local(&self, root: &Path, t: DateTime<Utc>, tag: Option<&str>) -> String {
        let (object_key, manifest_key, id, manifest) = self.copy(t, tag);
        std::fs::create_dir_all(root.join(&object_key).parent().unwrap()).unwrap();
        std::fs::write(root.join(object_key), &self.object).unwrap();
        std::fs::write(root.join(manifest_key), manifest).unwrap();
        id
    }
}

/// The backups a local repository holds, by ID (from manifest files), and every file in it.
fn local_ids(root: &Path, db: &str) -> BTreeSet<String> {
    files_containing(&root.join(db), ".manifest.json")
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches(".manifest.json")
                .to_string()
        })
        .collect()
}

fn all_files(root: &Path) -> BTreeSet<PathBuf> {
    files_containing(root, "").into_iter().collect()
}

/// Database A's history: 60 backups over a year, in the shapes a real repository gets (monthly,
/// weekly, daily and hourly runs, a few manual ones, a release tag and a safety backup).
fn history_a() -> Vec<(DateTime<Utc>, Option<&'static str>)> {
    let mut h = Vec::new();
    for m in 1..=11 {
        h.push((at(2026, m, 1, 1), None)); // monthly, on the 1st at 01:00
    }
    let mut sunday = at(2026, 9, 6, 3);
    while sunday <= at(2026, 11, 29, 3) {
        h.push((sunday, None)); // weekly, Sundays 03:00
        sunday += Duration::days(7);
    }
    let mut day = at(2026, 11, 20, 2);
    while day <= at(2026, 12, 3, 2) {
        h.push((day, None)); // daily, 02:00
        day += Duration::days(1);
    }
    for hour in 12..=23 {
        h.push((at(2026, 12, 3, hour), None)); // hourly, the last day
    }
    h.push((at(2025, 12, 10, 3), None));
    h.push((at(2025, 12, 20, 3), None));
    for (m, d) in [(2, 14), (4, 20), (5, 5), (6, 30), (8, 8), (10, 10)] {
        h.push((at(2026, m, d, 6), None)); // manual runs
    }
    h.push((at(2026, 3, 15, 12), Some("v1.0.0")));
    h.push((at(2026, 7, 4, 12), Some("pre-restore")));
    h
}

/// What `keep_last 3, keep_hourly 6, keep_daily 7, keep_weekly 4, keep_monthly 6,
/// keep_yearly 2` keeps of [`history_a`], worked out by hand.
fn expected_a(db: &str) -> BTreeSet<String> {
    let mut kept = Vec::new();
    for hour in 18..=23 {
        kept.push((at(2026, 12, 3, hour), None)); // hourly 6 (and last 3)
    }
    for (m, d, h) in [
        (12, 2, 2),
        (12, 1, 2),
        (11, 30, 2),
        (11, 29, 3),
        (11, 28, 2),
        (11, 27, 2),
    ] {
        kept.push((at(2026, m, d, h), None)); // daily 7 (12-03 is the first)
    }
    // weekly 4: ISO weeks 49 (12-03), 48 (11-29), 47 and 46 (their Sundays).
    kept.push((at(2026, 11, 22, 3), None));
    kept.push((at(2026, 11, 15, 3), None));
    // monthly 6: Dec and Nov are kept already; Oct, Sep, Aug, Jul (the safety backup of
    // 07-04 is outside the series, so 07-01 is July's newest).
    kept.push((at(2026, 10, 25, 3), None));
    kept.push((at(2026, 9, 27, 3), None));
    kept.push((at(2026, 8, 8, 6), None));
    kept.push((at(2026, 7, 1, 1), None));
    kept.push((at(2025, 12, 20, 3), None)); // yearly 2: 2026 and 2025
    kept.push((at(2026, 3, 15, 12), Some("v1.0.0")));
    kept.push((at(2026, 7, 4, 12), Some("pre-restore")));
    kept.into_iter().map(|(t, tag)| id_of(t, db, tag)).collect()
}

const POLICY_A: &str = "keep_last = 3\nkeep_hourly = 6\nkeep_daily = 7\nkeep_weekly = 4\n\
                        keep_monthly = 6\nkeep_yearly = 2\n";

fn decisions(report: &Value, db: &str) -> Vec<(String, bool, Vec<String>, String)> {
    report["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["database"] == db)
        .unwrap_or_else(|| panic!("{db} not in {report}"))["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["backup_id"].as_str().unwrap().to_string(),
                b["keep"].as_bool().unwrap(),
                b["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect(),
                b["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn prune(root: &Path, config: &Path, args: &[&str]) -> Run {
    run(pgsafe()
        .arg("--config")
        .arg(config)
        .args(["--json", "prune", "--repo"])
        .arg(root)
        .args(args))
}

#[test]
fn a_year_of_two_databases_is_pruned_exactly_as_the_policy_says() {
    let db_a = fixture_db("pa");
    let db_b = fixture_db("pb");
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    let template_a = Template::of(&db_a);
    let template_b = Template::of(&db_b);
    let history = history_a();
    assert_eq!(history.len(), 60);
    let all_a: BTreeSet<String> = history
        .iter()
        .map(|(t, tag)| template_a.write_local(root, *t, *tag))
        .collect();
    assert_eq!(all_a.len(), 60, "IDs are unique");
    let all_b: BTreeSet<String> = (1..=20)
        .map(|d| template_b.write_local(root, at(2026, 11, d, 4), None))
        .collect();
    // B's backup of 11-05 has been restored in staging: it is B's newest verified backup.
    let verified_b = id_of(at(2026, 11, 5, 4), &db_b, None);
    run(pgsafe()
        .args(["verify", &verified_b, "--repo"])
        .arg(root)
        .args(["--restore-to", &env().pg_url]))
    .assert_code(0);

    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("pgsafe.toml");
    std::fs::write(
        &config,
        format!(
            "[retention]\n{POLICY_A}\n[databases.{db_b}]\nurl = \"{}\"\nretention = {{ keep_last = 2 }}\n",
            db_url(&db_b)
        ),
    )
    .unwrap();

    // A dry run decides everything and deletes nothing.
    let files_before = all_files(root);
    let out = prune(root, &config, &[]);
    out.assert_code(0);
    let report = out.json();
    assert_eq!(report["dry_run"], true);
    assert_eq!(all_files(root), files_before, "a dry run deleted something");
    let a = decisions(&report, &db_a);
    assert_eq!(a.len(), 60);
    let kept_a: BTreeSet<String> = a.iter().filter(|d| d.1).map(|d| d.0.clone()).collect();
    assert_eq!(kept_a, expected_a(&db_a));
    for (id, keep, reasons, action) in &a {
        assert_eq!(*keep, !reasons.is_empty(), "{id}: {reasons:?}");
        assert_eq!(action, if *keep { "kept" } else { "would remove" });
    }
    let newest = &a[0];
    assert_eq!(newest.0, id_of(at(2026, 12, 3, 23), &db_a, None));
    assert!(
        newest.2.contains(&"newest backup".to_string()),
        "{newest:?}"
    );
    let tagged = a.iter().find(|d| d.0.ends_with("v1.0.0")).unwrap();
    assert_eq!(tagged.2, ["release tag v1.0.0"]);
    let b = decisions(&report, &db_b);
    let kept_b: Vec<&str> = b.iter().filter(|d| d.1).map(|d| d.0.as_str()).collect();
    assert_eq!(
        kept_b,
        [
            id_of(at(2026, 11, 20, 4), &db_b, None),
            id_of(at(2026, 11, 19, 4), &db_b, None),
            verified_b.clone(),
        ]
    );
    let human = run(pgsafe()
        .arg("--config")
        .arg(&config)
        .args(["prune", "--repo"])
        .arg(root));
    assert!(
        human.stdout.contains("dry run: nothing was removed"),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("daily 1/7"), "{}", human.stdout);

    // Pruning A only leaves B exactly as it was.
    let out = prune(root, &config, &["--database", &db_a, "--yes"]);
    out.assert_code(0);
    assert_eq!(out.json()["removed_backups"], 39);
    assert_eq!(local_ids(root, &db_a), expected_a(&db_a));
    assert_eq!(local_ids(root, &db_b), all_b, "pruning A touched B");
    // Nothing of a removed backup is left: not its object, not its manifest.
    let a_files = files_containing(&root.join(&db_a), "").len();
    assert_eq!(a_files, 2 * expected_a(&db_a).len());
    // Pruning again changes nothing: the policy is stable.
    let again = prune(root, &config, &["--database", &db_a, "--yes"]);
    again.assert_code(0);
    assert_eq!(again.json()["removed_backups"], 0);

    // B under a policy that would remove everything but the last: its newest verified backup
    // survives, and so does its newest.
    let out = prune(
        root,
        &config,
        &["--database", &db_b, "--keep-last", "0", "--yes"],
    );
    out.assert_code(0);
    assert_eq!(
        local_ids(root, &db_b),
        BTreeSet::from([id_of(at(2026, 11, 20, 4), &db_b, None), verified_b.clone()])
    );
    let reasons: Vec<Vec<String>> = decisions(&out.json(), &db_b)
        .into_iter()
        .filter(|d| d.1)
        .map(|d| d.2)
        .collect();
    assert_eq!(
        reasons,
        [vec!["newest backup"], vec!["newest verified backup"]]
    );
    // The kept backups still verify: prune removed only what it decided to.
    run(pgsafe()
        .args(["verify", "--all", "--database", &db_b, "--repo"])
        .arg(root))
    .assert_code(0);
    assert_eq!(all_a.len(), 60);
    drop_db(&db_a);
    drop_db(&db_b);
}

#[test]
fn prune_removes_only_stale_leftovers_and_never_what_no_manifest_of_the_database_names() {
    let db = fixture_db("pleft");
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    let template = Template::of(&db);
    let kept = template.write_local(root, at(2026, 11, 1, 3), None);
    let dir = root.join(&db);
    // A failed run's object without a manifest, three days old, and one of a run that may
    // still be writing (one minute old).
    let stale = dir.join(format!("{}.dump.zst", id_of(at(2026, 10, 1, 3), &db, None)));
    let fresh = dir.join(format!("{}.dump.zst", id_of(at(2026, 10, 2, 3), &db, None)));
    let partial = dir.join(format!(
        ".{}.dump.zst.partial-abc123",
        id_of(at(2026, 10, 3, 3), &db, None)
    ));
    // Files that are not pgsafe's: never touched.
    let foreign = dir.join("notes.txt");
    let other_folder = root.join("elsewhere").join("2026-01-01T000000Z_x.dump.zst");
    std::fs::create_dir_all(other_folder.parent().unwrap()).unwrap();
    for (path, age_secs) in [
        (&stale, 3 * 86400),
        (&fresh, 60),
        (&partial, 3 * 86400),
        (&foreign, 3 * 86400),
        (&other_folder, 3 * 86400),
    ] {
        std::fs::write(path, b"leftover").unwrap();
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs))
            .unwrap();
    }
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("pgsafe.toml");
    std::fs::write(&config, "[retention]\nkeep_last = 5\n").unwrap();

    let out = prune(root, &config, &["--database", &db]);
    out.assert_code(0);
    assert!(
        stale.exists() && partial.exists(),
        "a dry run removed a leftover"
    );
    let out = prune(root, &config, &["--database", &db, "--yes"]);
    out.assert_code(0);
    let report = out.json();
    let actions: Vec<(String, String)> = report["leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap().to_string(),
                l["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(!stale.exists(), "{actions:?}");
    assert!(!partial.exists(), "{actions:?}");
    assert!(fresh.exists(), "a young leftover was removed: {actions:?}");
    assert!(foreign.exists() && other_folder.exists());
    assert_eq!(local_ids(root, &db), BTreeSet::from([kept]));

    // A policy with no rule is refused: nothing says what to keep.
    std::fs::write(&config, "").unwrap();
    let out = prune(root, &config, &["--yes"]);
    out.assert_code(2);
    assert!(out.stderr.contains("no retention policy"), "{}", out.stderr);
    let out = prune(root, &config, &["--keep-within", "soon"]);
    out.assert_code(2);
    drop_db(&db);
}

fn s3_cmd(target: &S3Target, repo: &str) -> Command {
    let mut cmd = pgsafe();
    target.apply(&mut cmd);
    cmd.env("PGSAFE_REPO", repo);
    cmd
}

#[test]
fn prune_on_each_s3_server_deletes_backups_and_aborts_stale_uploads() {
    let db = fixture_db("ps3");
    let template = Template::of(&db);
    let mut targets = vec![env().s3s.clone()];
    targets.extend(garage().cloned());
    for target in targets {
        let prefix = unique("prune");
        let repo = target.repo(&prefix);
        let mut ids = Vec::new();
        for d in 1..=5 {
            let (object_key, manifest_key, id, manifest) = template.copy(at(2026, 11, d, 3), None);
            target.put(&format!("{prefix}/{object_key}"), template.object.clone());
            target.put(&format!("{prefix}/{manifest_key}"), manifest);
            ids.push(id);
        }
        // A failed run's unfinished multipart upload (servers that list them: Garage, AWS).
        let upload_key = format!(
            "{prefix}/{db}/{}.dump.zst",
            id_of(at(2026, 11, 6, 3), &db, None)
        );
        rt().block_on(async {
            target
                .client()
                .create_multipart_upload()
                .bucket(&target.bucket)
                .key(&upload_key)
                .send()
                .await
                .expect("CreateMultipartUpload")
        });
        let out = run(s3_cmd(&target, &repo).args([
            "--json",
            "prune",
            "--keep-last",
            "2",
            "--stale-after",
            "0s",
            "--yes",
        ]));
        out.assert_code(0);
        assert_eq!(out.json()["removed_backups"], 3, "{}", target.name);
        let mut keys = target.keys(&format!("{prefix}/"));
        keys.sort();
        assert_eq!(
            keys,
            [
                format!("{prefix}/{db}/{}.dump.zst", ids[3]),
                format!("{prefix}/{db}/{}.manifest.json", ids[3]),
                format!("{prefix}/{db}/{}.dump.zst", ids[4]),
                format!("{prefix}/{db}/{}.manifest.json", ids[4]),
            ],
            "{}",
            target.name
        );
        if let Some(uploads) = target.multipart_uploads(&format!("{prefix}/")) {
            assert!(uploads.is_empty(), "{}: {uploads:?}", target.name);
        }
    }
    drop_db(&db);
}
