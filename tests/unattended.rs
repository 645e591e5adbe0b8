//! Unattended operation against a real PostgreSQL and real S3: the configuration file and its
//! precedence, `pgsafe schedule` firing jobs on a seconds-level cron expression, webhook and
//! healthchecks notifications received by a server of the test's own on 127.0.0.1, the metrics
//! file, the anomaly guard, and `backup --all --globals` restored into a fresh cluster.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("pgsafe.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn with_config(config: &Path) -> Command {
    let mut cmd = pgsafe();
    cmd.arg("--config").arg(config);
    cmd
}

/// The one manifest under `root`, parsed.
fn only_manifest(root: &Path) -> serde_json::Value {
    let found = files_containing(root, ".manifest.json");
    assert_eq!(found.len(), 1, "{found:?}");
    serde_json::from_slice(&std::fs::read(&found[0]).unwrap()).unwrap()
}

#[test]
fn flags_override_the_environment_which_overrides_the_file() {
    let db = fixture_db("cprec");
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let [file_repo, env_repo, flag_repo, conf] = [&dirs[0], &dirs[1], &dirs[2], &dirs[3]];
    let config = write_config(
        conf.path(),
        &format!(
            "[repository]\nurl = \"{}\"\n[backup]\ncompression = \"gzip\"\n",
            file_repo.path().display()
        ),
    );
    // The file alone.
    run(with_config(&config)
        .arg("backup")
        .env("DATABASE_URL", db_url(&db)))
    .assert_code(0);
    assert_eq!(
        only_manifest(file_repo.path())["object"]["compression"]["algorithm"],
        "gzip"
    );
    // The environment over the file.
    run(with_config(&config)
        .arg("backup")
        .env("DATABASE_URL", db_url(&db))
        .env("PGSAFE_REPO", env_repo.path())
        .env("PGSAFE_COMPRESSION", "none"))
    .assert_code(0);
    assert_eq!(
        only_manifest(env_repo.path())["object"]["compression"]["algorithm"],
        "none"
    );
    // Flags over both.
    run(with_config(&config)
        .args(["backup", "--compression", "zstd", "--repo"])
        .arg(flag_repo.path())
        .env("DATABASE_URL", db_url(&db))
        .env("PGSAFE_REPO", env_repo.path())
        .env("PGSAFE_COMPRESSION", "none"))
    .assert_code(0);
    assert_eq!(
        only_manifest(flag_repo.path())["object"]["compression"]["algorithm"],
        "zstd"
    );
    assert_eq!(
        files_containing(file_repo.path(), ".manifest.json").len(),
        1
    );
    assert_eq!(files_containing(env_repo.path(), ".manifest.json").len(), 1);

    // PGSAFE_CONFIG names the file too; a named file that does not exist is an error.
    let out = run(pgsafe()
        .args(["list", "--json"])
        .env("PGSAFE_CONFIG", &config));
    out.assert_code(0);
    assert_eq!(out.json()["backups"].as_array().unwrap().len(), 1);
    let out = run(pgsafe()
        .arg("list")
        .env("PGSAFE_CONFIG", conf.path().join("missing.toml")));
    out.assert_code(2);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    drop_db(&db);
}

#[test]
fn unknown_keys_and_bad_values_are_rejected_by_name() {
    let conf = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("[backup]\ncompresion = \"zstd\"\n", "compresion"),
        ("[retention]\nkeep_dayly = 7\n", "keep_dayly"),
        (
            "[databases.app]\nurl = \"postgresql:///app\"\nprotect = true\n",
            "protect",
        ),
        (
            "[[schedule]]\njob = \"backup\"\ncron = \"0 3 * * *\"\nevery_day = 1\n",
            "every_day",
        ),
        (
            "[[schedule]]\njob = \"backups\"\ncron = \"0 3 * * *\"\n",
            "backups",
        ),
        ("[[schedule]]\njob = \"backup\"\ncron = \"3am\"\n", "3am"),
        ("[backup]\ncompression = \"lz4\"\n", "lz4"),
    ] {
        let config = write_config(conf.path(), text);
        let out = run(with_config(&config).args(["config", "check"]));
        out.assert_code(2);
        assert!(out.stderr.contains(needle), "{text}: {}", out.stderr);
        assert!(
            out.stderr.contains(&config.display().to_string()),
            "{}",
            out.stderr
        );
        // Every command refuses the file, before doing anything.
        run(with_config(&config).arg("list")).assert_code(2);
    }
}

#[test]
fn config_check_prints_the_effective_settings_with_secrets_redacted() {
    let conf = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let config = write_config(
        conf.path(),
        &format!(
            r#"
[repository]
url = "{}"

[retention]
keep_daily = 7

[verify]
restore_to = "postgresql://drill:staging-pw-123@staging.internal:5432/postgres"

[notifications]
webhook_url = "https://hooks.example.com/services/T00/B00/webhook-token-456"
healthchecks_url = "https://hc-ping.com/hc-uuid-789"

[databases.tickets]
url = "postgresql://app:db-secret-000@db.internal:5432/gestor_tickets"
protected = true
smoke_sql = ["SELECT count(*) > 0 FROM tickets"]

[databases.billing]
url_env = "BILLING_URL"
retention = {{ keep_last = 3 }}

[[schedule]]
job = "backup"
cron = "0 3 * * *"

[[schedule]]
job = "verify"
cron = "0 0 5 * * SUN"
databases = ["tickets"]
restore = true
"#,
            repo.path().display()
        ),
    );
    let secrets = [
        "staging-pw-123",
        "webhook-token-456",
        "hc-uuid-789",
        "db-secret-000",
        "billing-pw",
    ];
    let out = run(with_config(&config).args(["config", "check"]).env(
        "BILLING_URL",
        "postgresql://b:billing-pw@db.internal/billing",
    ));
    out.assert_code(0);
    for s in secrets {
        assert!(
            !out.stdout.contains(s) && !out.stderr.contains(s),
            "{s} shown:\n{}",
            out.stdout
        );
    }
    for shown in [
        "postgresql://app:***@db.internal:5432/gestor_tickets",
        "https://hooks.example.com/***",
        "$BILLING_URL = postgresql://b:***@db.internal",
        "keep-last 3",
        "keep-daily 7",
        "protected",
    ] {
        assert!(
            out.stdout.contains(shown),
            "{shown} not in:\n{}",
            out.stdout
        );
    }
    let json = run(with_config(&config)
        .args(["--json", "config", "check"])
        .env(
            "BILLING_URL",
            "postgresql://b:billing-pw@db.internal/billing",
        ));
    json.assert_code(0);
    for s in secrets {
        assert!(!json.stdout.contains(s), "{s} shown: {}", json.stdout);
    }
    let j = json.json();
    assert_eq!(j["schedule"].as_array().unwrap().len(), 2);
    assert!(j["schedule"][0]["next_run"]
        .as_str()
        .unwrap()
        .ends_with("T03:00:00Z"));
    // What would stop an unattended run is a problem: exit 2, named.
    let out = run(with_config(&config).args(["config", "check"]));
    out.assert_code(2);
    assert!(out.stdout.contains("BILLING_URL"), "{}", out.stdout);
    assert!(
        out.stderr.contains("BILLING_URL is not set"),
        "{}",
        out.stderr
    );
}

/// Runs `pgsafe schedule` until `done` says enough was received, then sends SIGTERM.
fn schedule_until(config: &Path, what: &str, done: impl Fn() -> bool) -> (i32, String) {
    let mut child = with_config(config)
        .arg("schedule")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until(what, 120, || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pgsafe schedule ended early ({status})");
        }
        done()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(children_of(pid).is_empty(), "a job is left running");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn schedule_fires_jobs_notifies_on_success_and_failure_and_writes_metrics() {
    let db = fixture_db("sched");
    let missing = unique("sched_missing");
    let hooks = Receiver::start();
    let repo = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let metrics = conf.path().join("metrics").join("pgsafe.prom");
    let config = write_config(
        conf.path(),
        &format!(
            r#"
[repository]
url = "{repo}"

[notifications]
webhook_url = "{hook}/hook/secret-token"
healthchecks_url = "{hook}/hc"
metrics_file = "{metrics}"

[databases.good]
url = "{good}"

[databases.broken]
url = "{broken}"

[[schedule]]
name = "nightly"
job = "backup"
cron = "*/2 * * * * *"
databases = ["good"]

[[schedule]]
name = "broken"
job = "backup"
cron = "*/2 * * * * *"
databases = ["broken"]
"#,
            repo = repo.path().display(),
            hook = hooks.url,
            metrics = metrics.display(),
            good = db_url(&db),
            broken = db_url(&missing),
        ),
    );
    let hook_bodies = |status: &str| -> Vec<serde_json::Value> {
        hooks
            .requests()
            .iter()
            .filter(|r| r.path == "/hook/secret-token")
            .map(|r| r.json())
            .filter(|b| b["status"] == status)
            .collect()
    };
    let (code, stderr) = schedule_until(&config, "a success and a failure notification", || {
        !hook_bodies("success").is_empty() && !hook_bodies("failure").is_empty()
    });
    // Stopped while idle: 0; while a job ran: that job aborted cleanly, 130.
    assert!(code == 0 || code == 130, "exit {code}: {stderr}");
    assert!(stderr.contains("job \"nightly\""), "{stderr}");

    let ok = &hook_bodies("success")[0];
    assert_eq!(ok["job"], "backup");
    assert_eq!(ok["name"], "nightly");
    assert_eq!(ok["exit_code"], 0);
    assert_eq!(ok["databases"], serde_json::json!([db]));
    let backup_id = ok["results"][0]["backup_id"].as_str().unwrap();
    assert!(backup_id.contains(&db), "{ok}");
    assert!(ok["error"].is_null());
    let failed = &hook_bodies("failure")[0];
    assert_eq!(failed["job"], "backup");
    assert_eq!(failed["name"], "broken");
    assert_eq!(failed["exit_code"], 1);
    assert_eq!(failed["databases"], serde_json::json!([missing]));
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains(&missing), "{error}");
    // Passwords never reach a notification.
    for r in hooks.requests() {
        assert!(!r.body.contains(&env().pg_password), "{}", r.body);
    }
    assert!(!stderr.contains(&env().pg_password));
    assert!(
        !stderr.contains("secret-token"),
        "the webhook URL was logged: {stderr}"
    );
    // Healthchecks-style pings: start, success, fail.
    let paths: Vec<String> = hooks.requests().iter().map(|r| r.path.clone()).collect();
    for p in ["/hc/start", "/hc", "/hc/fail"] {
        assert!(paths.iter().any(|x| x == p), "{p} not pinged: {paths:?}");
    }
    // The failing job did not stop the other: the good database was backed up.
    let listed = run(pgsafe().args(["--json", "list", "--repo"]).arg(repo.path()));
    let listed = listed.json();
    assert!(!listed["backups"].as_array().unwrap().is_empty());
    assert!(
        listed["incomplete"].as_array().unwrap().is_empty(),
        "the stop left something: {listed}"
    );

    let text = std::fs::read_to_string(&metrics).unwrap();
    for line in [
        format!("pgsafe_last_backup_timestamp_seconds{{database=\"{db}\"}} "),
        format!("pgsafe_last_backup_size_bytes{{database=\"{db}\"}} "),
        format!("pgsafe_last_backup_duration_seconds{{database=\"{db}\"}} "),
        "pgsafe_job_last_run_timestamp_seconds{job=\"nightly\"} ".to_string(),
        // Each scheduled job has its own outcome, by name.
        "pgsafe_job_last_success{job=\"nightly\"} 1".to_string(),
        "pgsafe_job_last_success{job=\"broken\"} 0".to_string(),
    ] {
        assert!(text.contains(&line), "{line} not in:\n{text}");
    }
    drop_db(&db);
}

#[test]
fn schedule_once_runs_backup_verify_drill_and_prune() {
    let db = fixture_db("sonce");
    let hooks = Receiver::start();
    let repo = tempfile::tempdir().unwrap();
    let conf = tempfile::tempdir().unwrap();
    let metrics = conf.path().join("pgsafe.prom");
    let config = write_config(
        conf.path(),
        &format!(
            r#"
[repository]
url = "{repo}"

[retention]
keep_last = 1

[verify]
restore_to_env = "STAGING_URL"

[notifications]
webhook_url = "{hook}/hook"
metrics_file = "{metrics}"

[databases.tickets]
url_env = "TICKETS_URL"
smoke_sql = ["SELECT count(*) > 0 FROM users WHERE role = 'ADMIN'", "SELECT count(*) > 0 FROM tickets"]

[[schedule]]
job = "backup"
cron = "0 3 * * *"

[[schedule]]
job = "backup"
cron = "0 4 * * *"

[[schedule]]
job = "verify"
cron = "0 0 5 * * SUN"
restore = true

[[schedule]]
job = "prune"
cron = "0 6 * * *"
"#,
            repo = repo.path().display(),
            hook = hooks.url,
            metrics = metrics.display(),
        ),
    );
    let out = run(with_config(&config)
        .args(["schedule", "--once"])
        .env("TICKETS_URL", db_url(&db))
        .env("STAGING_URL", &env().pg_url));
    out.assert_code(0);
    let bodies: Vec<serde_json::Value> = hooks.requests().iter().map(|r| r.json()).collect();
    let jobs: Vec<(&str, &str)> = bodies
        .iter()
        .map(|b| (b["job"].as_str().unwrap(), b["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        jobs,
        [
            ("backup", "success"),
            ("backup", "success"),
            ("verify", "success"),
            ("prune", "success")
        ]
    );
    let verified = &bodies[2]["results"][0];
    assert_eq!(verified["level"], "restore");
    assert_eq!(verified["checks_run"].as_u64().map(|n| n > 0), Some(true));
    // keep_last 1: the first backup is gone, the verified newest stays.
    let listed = run(pgsafe().args(["--json", "list", "--repo"]).arg(repo.path())).json();
    let backups = listed["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 1);
    assert_eq!(backups[0]["verified_level"], "restore");
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(
        text.contains(&format!(
            "pgsafe_last_verify_timestamp_seconds{{database=\"{db}\"}}"
        )),
        "{text}"
    );
    assert!(
        text.contains("pgsafe_job_last_success{job=\"prune\"} 1"),
        "{text}"
    );
    assert!(text.contains("pgsafe_backups{"), "{text}");

    // A job that fails makes --once exit non-zero; the others still ran.
    let out = run(with_config(&config)
        .args(["schedule", "--once"])
        .env("TICKETS_URL", db_url(&unique("gone")))
        .env("STAGING_URL", &env().pg_url));
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("jobs failed"), "{}", out.stderr);
    drop_db(&db);
}

#[test]
fn the_anomaly_guard_flags_a_sharp_fall_and_deletes_nothing() {
    let db = fixture_db("anom");
    let hooks = Receiver::start();
    let repo = tempfile::tempdir().unwrap();
    let backup = |extra: &[&str]| {
        let out = run(pgsafe()
            .args(["--json", "backup", "--repo"])
            .arg(repo.path())
            .args(["--webhook-url", &format!("{}/hook", hooks.url)])
            .args(extra)
            .env("DATABASE_URL", db_url(&db)));
        out.assert_code(0);
        out
    };
    let first = backup(&[]);
    assert!(first.json()["anomalies"].as_array().unwrap().is_empty());
    psql(
        &db,
        "DELETE FROM attachments; DELETE FROM comments; DELETE FROM \"Audit Log\"; DELETE FROM tickets",
    );
    let second = backup(&[]);
    let flagged = second.json()["anomalies"].clone();
    let flagged: Vec<&str> = flagged
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        flagged.iter().any(|a| a.contains("row count fell")),
        "{flagged:?}"
    );
    assert!(
        flagged.iter().any(|a| a.contains("raw size fell")),
        "{flagged:?}"
    );
    assert!(second.stderr.contains("anomaly guard"), "{}", second.stderr);
    // In the manifest, the notification and the listing; both backups are kept.
    let id = second.json()["backup_id"].as_str().unwrap().to_string();
    let shown = run(pgsafe()
        .args(["--json", "show", &id, "--repo"])
        .arg(repo.path()))
    .json();
    assert_eq!(shown["anomalies"].as_array().unwrap().len(), 2);
    let last = hooks.requests().last().unwrap().json();
    assert_eq!(last["status"], "success");
    assert_eq!(last["anomalies"].as_array().unwrap().len(), 2, "{last}");
    let listed = run(pgsafe().args(["list", "--repo"]).arg(repo.path()));
    assert!(
        listed.stdout.contains("anomaly guard flagged"),
        "{}",
        listed.stdout
    );
    assert_eq!(files_containing(repo.path(), ".manifest.json").len(), 2);
    // A higher threshold lets the same fall through.
    psql(&db, "DELETE FROM users WHERE id % 2 = 0");
    let third = backup(&["--anomaly-threshold", "99"]);
    assert!(third.json()["anomalies"].as_array().unwrap().is_empty());
    drop_db(&db);
}

#[test]
fn backup_all_with_globals_restores_roles_and_databases_into_a_fresh_cluster() {
    let source = Cluster::start();
    let target = Cluster::start();
    source.psql(
        "postgres",
        "CREATE ROLE app_owner LOGIN PASSWORD 'owner-pw'; CREATE ROLE readers NOLOGIN; \
         CREATE ROLE \"Report User\" LOGIN PASSWORD 'report-pw' IN ROLE readers",
    );
    source.psql("postgres", "CREATE DATABASE tickets OWNER app_owner");
    source.psql("postgres", "CREATE DATABASE billing OWNER app_owner");
    source.psql_file("tickets", &fixture("tickets.sql"));
    source.psql(
        "tickets",
        "ALTER TABLE tickets OWNER TO app_owner; GRANT SELECT ON tickets TO readers",
    );
    source.psql(
        "billing",
        "CREATE TABLE invoices (id int PRIMARY KEY, total numeric); \
         INSERT INTO invoices SELECT g, g * 1.5 FROM generate_series(1, 500) g; \
         ALTER TABLE invoices OWNER TO app_owner; GRANT SELECT ON invoices TO readers",
    );
    let repo = tempfile::tempdir().unwrap();
    let out = run(pgsafe()
        .args([
            "--json",
            "backup",
            "--all",
            "--globals",
            "--with-owner",
            "--with-acl",
            "--repo",
        ])
        .arg(repo.path())
        .env("DATABASE_URL", source.url("postgres")));
    out.assert_code(0);
    let summaries = out.json();
    let mut dbs: Vec<&str> = summaries
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["database"].as_str().unwrap())
        .collect();
    dbs.sort();
    assert_eq!(
        dbs,
        ["billing", "postgres", "tickets"],
        "every non-template database"
    );
    for s in summaries.as_array().unwrap() {
        assert!(
            s["globals_key"].as_str().unwrap().contains(".globals.sql"),
            "{s}"
        );
    }
    // The password hashes are in the stored globals, never in the output.
    assert!(!out.stdout.contains("owner-pw") && !out.stderr.contains(&source.password));

    for db in ["tickets", "billing"] {
        let restored = run(pgsafe()
            .args(["--json", "restore", "latest", "--database", db, "--repo"])
            .arg(repo.path())
            .args(["--target", &target.url(db), "--confirm", db])
            .args([
                "--reason",
                "globals drill",
                "--with-globals",
                "--with-owner",
                "--with-acl",
            ])
            .env("PGSAFE_AUDIT_LOG", repo.path().join("audit.log")));
        restored.assert_code(0);
    }
    assert_eq!(
        target.psql(
            "postgres",
            "SELECT string_agg(rolname || ':' || rolcanlogin, ',' ORDER BY rolname) FROM pg_roles \
             WHERE rolname IN ('app_owner', 'readers', 'Report User')"
        ),
        "Report User:true,app_owner:true,readers:false"
    );
    assert_eq!(
        target.psql(
            "postgres",
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid \
             JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = 'readers' AND u.rolname = 'Report User'"
        ),
        "1"
    );
    assert_eq!(
        target.psql(
            "tickets",
            "SELECT tableowner FROM pg_tables WHERE tablename = 'tickets'"
        ),
        "app_owner"
    );
    assert_eq!(
        target.psql(
            "billing",
            "SELECT has_table_privilege('readers', 'invoices', 'SELECT')"
        ),
        "t"
    );
    assert_eq!(
        target.psql("billing", "SELECT count(*) FROM invoices"),
        "500"
    );
    assert_eq!(
        target.psql("tickets", "SELECT count(*) FROM tickets"),
        source.psql("tickets", "SELECT count(*) FROM tickets")
    );
    // The restored role logs in with its password from the source cluster.
    let login = Command::new(pg_tool("psql"))
        .args([
            "-X",
            "-At",
            "-h",
            "127.0.0.1",
            "-p",
            &target.port.to_string(),
        ])
        .args([
            "-U",
            "app_owner",
            "-d",
            "tickets",
            "-c",
            "SELECT current_user",
        ])
        .env("PGPASSWORD", "owner-pw")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&login.stdout).trim(), "app_owner");

    // Damaged globals are a corrupt backup: verify says so, and a restore applies nothing.
    let globals = files_containing(&repo.path().join("tickets"), ".globals.sql.zst");
    assert_eq!(globals.len(), 1);
    let mut data = std::fs::read(&globals[0]).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0x10;
    std::fs::write(&globals[0], data).unwrap();
    let out = run(pgsafe()
        .args(["verify", "latest", "--database", "tickets", "--repo"])
        .arg(repo.path()));
    out.assert_code(5);
    assert!(out.stderr.contains("globals"), "{}", out.stderr);
    target.psql("postgres", "DROP ROLE \"Report User\"");
    let out = run(pgsafe()
        .args(["restore", "latest", "--database", "tickets", "--repo"])
        .arg(repo.path())
        .args([
            "--target",
            &target.url("tickets_again"),
            "--confirm",
            "tickets_again",
        ])
        .args(["--reason", "drill", "--with-globals"])
        .env("PGSAFE_AUDIT_LOG", repo.path().join("audit.log")));
    out.assert_code(5);
    assert_eq!(
        target.psql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname = 'Report User'"
        ),
        "0",
        "corrupt globals were applied"
    );

    // A backup without globals cannot be restored --with-globals: refused, nothing done.
    let plain = run(pgsafe()
        .args(["--json", "backup", "--repo"])
        .arg(repo.path())
        .env("DATABASE_URL", source.url("billing")));
    plain.assert_code(0);
    let id = plain.json()["backup_id"].as_str().unwrap().to_string();
    let out = run(pgsafe()
        .args(["restore", &id, "--repo"])
        .arg(repo.path())
        .args([
            "--target",
            &target.url("billing_copy"),
            "--confirm",
            "billing_copy",
        ])
        .args(["--reason", "drill", "--with-globals"])
        .env("PGSAFE_AUDIT_LOG", repo.path().join("audit.log")));
    out.assert_code(2);
    assert!(out.stderr.contains("holds no globals"), "{}", out.stderr);
    assert_eq!(
        target.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'billing_copy'"
        ),
        "0"
    );
}

#[test]
fn the_example_configuration_of_docs_and_docker_compose_runs_every_job() {
    // docs/examples/pgsafe.toml is what docker-compose.yml mounts; run it here with the same
    // servers (PostgreSQL 15, s3s-fs) and the environment compose sets, a test's own instead.
    let db = fixture_db("example");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/pgsafe.toml");
    let s3 = &env().s3s;
    let prefix = unique("example");
    let metrics = tempfile::tempdir().unwrap();
    let cmd = || {
        let mut cmd = with_config(&config);
        s3.apply(&mut cmd)
            .env("PGSAFE_REPO", s3.repo(&prefix))
            .env("TICKETS_URL", db_url(&db))
            .env("STAGING_URL", &env().pg_url)
            .env("PGSAFE_METRICS_FILE", metrics.path().join("pgsafe.prom"));
        cmd
    };
    let check = run(cmd().args(["--json", "config", "check"]));
    check.assert_code(0);
    let jobs = check.json()["schedule"].as_array().unwrap().len();
    assert_eq!(jobs, 3);
    let out = run(cmd().args(["schedule", "--once"]));
    out.assert_code(0);
    for line in ["nightly backup", "prune", "weekly restore drill"] {
        assert!(
            out.stderr.contains(&format!("job \"{line}\"")),
            "{}",
            out.stderr
        );
    }
    let shown = run(cmd().args(["--json", "show", "latest", "--database", &db]));
    shown.assert_code(0);
    let shown = shown.json();
    assert_eq!(shown["verified"]["level"], "restore", "the drill ran");
    assert!(
        shown["globals"]["object"]["key"].is_string(),
        "globals stored"
    );
    assert!(metrics.path().join("pgsafe.prom").exists());
    drop_db(&db);
}
