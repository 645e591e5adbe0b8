//! Shared helpers for the end-to-end tests: a real PostgreSQL and real S3 servers, started by
//! `scripts/env.sh start` (which `scripts/test.sh` runs). Nothing here is mocked.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub struct Env {
    pub pg_url: String,
    pub pg_port: String,
    pub pg_password: String,
    pub pg_bin: PathBuf,
    pub s3s: S3Target,
    pub garage: Option<S3Target>,
}

#[derive(Clone)]
pub struct S3Target {
    pub name: &'static str,
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    pub region: String,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the real PostgreSQL and S3 servers of \
             scripts/env.sh. Run scripts/test.sh, or `scripts/env.sh start && source .pgsafe-env/env.sh`"
        )
    })
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| Env {
        pg_url: var("PGSAFE_TEST_PG_URL"),
        pg_port: var("PGSAFE_TEST_PG_PORT"),
        pg_password: var("PGSAFE_TEST_PG_PASSWORD"),
        pg_bin: PathBuf::from(var("PGSAFE_TEST_PG_BIN")),
        s3s: S3Target {
            name: "s3s-fs",
            endpoint: var("PGSAFE_TEST_S3S_ENDPOINT"),
            access_key: var("PGSAFE_TEST_S3S_ACCESS_KEY"),
            secret_key: var("PGSAFE_TEST_S3S_SECRET_KEY"),
            bucket: var("PGSAFE_TEST_S3S_BUCKET"),
            region: "us-east-1".into(),
        },
        garage: std::env::var("PGSAFE_TEST_GARAGE_ENDPOINT")
            .ok()
            .map(|endpoint| S3Target {
                name: "garage",
                endpoint,
                access_key: var("PGSAFE_TEST_GARAGE_ACCESS_KEY"),
                secret_key: var("PGSAFE_TEST_GARAGE_SECRET_KEY"),
                bucket: var("PGSAFE_TEST_GARAGE_BUCKET"),
                region: var("PGSAFE_TEST_GARAGE_REGION"),
            }),
    })
}

/// Garage is part of the test environment; set PGSAFE_SKIP_GARAGE=1 to run without it locally.
pub fn garage() -> Option<&'static S3Target> {
    if std::env::var("PGSAFE_SKIP_GARAGE").as_deref() == Ok("1") {
        return None;
    }
    Some(env().garage.as_ref().expect(
        "PGSAFE_TEST_GARAGE_ENDPOINT is not set: start the environment with Garage (scripts/env.sh start)",
    ))
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        nanos
    )
}

pub fn db_url(db: &str) -> String {
    let base = env().pg_url.rsplit_once('/').unwrap().0;
    format!("{base}/{db}")
}

pub fn pg_tool(name: &str) -> PathBuf {
    env().pg_bin.join(name)
}

/// Runs SQL with psql as the superuser; returns unaligned, tuples-only output.
pub fn psql(db: &str, sql: &str) -> String {
    psql_at(&env().pg_port, &env().pg_password, db, sql)
}

/// psql as the superuser of the cluster on 127.0.0.1:`port`; panics with psql's stderr on failure.
fn psql_at(port: &str, password: &str, db: &str, sql: &str) -> String {
    let out = Command::new(pg_tool("psql"))
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .args(["-p", port, "-d", db, "-c", sql])
        .env("PGPASSWORD", password)
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql failed on {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn psql_file(db: &str, file: &Path, vars: &[(&str, &str)]) {
    let mut cmd = Command::new(pg_tool("psql"));
    cmd.args([
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-U",
        "postgres",
    ])
    .args(["-p", &env().pg_port, "-d", db, "-f"])
    .arg(file)
    .env("PGPASSWORD", &env().pg_password);
    for (k, v) in vars {
        cmd.arg("-v").arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("psql runs");
    assert!(
        out.status.success(),
        "psql -f {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// A new database loaded with the ticket fixture.
pub fn fixture_db(prefix: &str) -> String {
    let db = unique(prefix);
    psql("postgres", &format!("CREATE DATABASE \"{db}\""));
    psql_file(&db, &fixture("tickets.sql"), &[]);
    db
}

/// A new database with the ticket fixture and `scale` units of generated data (~1.35 MB on disk each).
pub fn large_db(prefix: &str, scale: u32) -> String {
    let db = fixture_db(prefix);
    psql_file(
        &db,
        &fixture("generate_large.sql"),
        &[("scale", &scale.to_string())],
    );
    db
}

/// Row count of every user table, as `schema.table -> rows`.
pub fn table_counts(db: &str) -> Vec<(String, i64)> {
    let tables = psql(
        db,
        "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY schemaname, relname",
    );
    tables
        .lines()
        .map(|t| {
            let n: i64 = psql(db, &format!("SELECT count(*) FROM {t}"))
                .parse()
                .unwrap();
            let plain = t.replace('"', "");
            (plain, n)
        })
        .collect()
}

/// The pgsafe binary with a clean environment: no AWS or PG settings from the caller.
pub fn pgsafe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgsafe"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("PG") || k == "DATABASE_URL" || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("PGSAFE_NO_PROGRESS", "1");
    cmd
}

impl S3Target {
    pub fn repo(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// Points a pgsafe command at this server, credentials in the environment as AWS tools expect.
    pub fn apply<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_REGION", &self.region)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
    }

    /// An independent S3 client (not pgsafe's code) to inspect what the server holds.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(
                &self.access_key,
                &self.secret_key,
                None,
                None,
                "test",
            ))
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    pub fn keys(&self, prefix: &str) -> Vec<String> {
        rt().block_on(async {
            let out = self
                .client()
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .send()
                .await
                .expect("ListObjectsV2");
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string))
                .collect()
        })
    }

    pub fn get(&self, key: &str) -> Vec<u8> {
        rt().block_on(async {
            let out = self
                .client()
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .expect("GetObject");
            out.body.collect().await.unwrap().into_bytes().to_vec()
        })
    }

    pub fn put(&self, key: &str, data: Vec<u8>) {
        rt().block_on(async {
            self.client()
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(data.into())
                .send()
                .await
                .expect("PutObject");
        })
    }

    /// Unfinished multipart uploads under `prefix`, or None when the server cannot list them
    /// (s3s-fs answers NotImplemented).
    pub fn multipart_uploads(&self, prefix: &str) -> Option<Vec<String>> {
        rt().block_on(async {
            match self
                .client()
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .send()
                .await
            {
                Ok(out) => Some(
                    out.uploads()
                        .iter()
                        .filter_map(|u| u.key().map(str::to_string))
                        .collect(),
                ),
                Err(e) => {
                    use aws_sdk_s3::error::ProvideErrorMetadata;
                    assert_eq!(
                        e.code(),
                        Some("NotImplemented"),
                        "ListMultipartUploads: {e:?}"
                    );
                    None
                }
            }
        })
    }
}

pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Runtime::new().unwrap())
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn decompress(compression: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match compression {
        "zstd" => {
            zstd::stream::read::Decoder::new(data)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
        }
        "gzip" => {
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        "none" => out = data.to_vec(),
        other => panic!("unknown compression {other}"),
    }
    out
}

/// `pg_restore --list` of an archive: its table of contents.
pub fn pg_restore_list(archive: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.dump");
    std::fs::write(&path, archive).unwrap();
    let out = Command::new(pg_tool("pg_restore"))
        .arg("--list")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_restore --list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Restores an archive into a new database with plain pg_restore.
pub fn pg_restore_into(archive: &[u8], db: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("archive.dump");
    std::fs::write(&path, archive).unwrap();
    psql("postgres", &format!("CREATE DATABASE \"{db}\""));
    let out = Command::new(pg_tool("pg_restore"))
        .args([
            "--exit-on-error",
            "--no-owner",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
            &env().pg_port,
            "-d",
            db,
        ])
        .arg(&path)
        .env("PGPASSWORD", &env().pg_password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_restore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\nstdout: {}\nstderr: {}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("pgsafe runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Files under a directory whose name contains `needle` (leftovers of local uploads).
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                found.extend(files_containing(&p, needle));
            } else if p.file_name().unwrap().to_string_lossy().contains(needle) {
                found.push(p);
            }
        }
    }
    found
}

/// Processes whose parent is `ppid`, as (pid, command name).
pub fn children_of(ppid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
        if rest.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(ppid) {
            out.push((pid, comm));
        }
    }
    out
}

/// Every live process named `name` whose command line mentions `needle`.
pub fn processes_with(name: &str, needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if comm.trim() == name && String::from_utf8_lossy(&cmdline).contains(needle) {
            out.push(pid);
        }
    }
    out
}

pub fn wait_until(what: &str, timeout_secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(timeout_secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Holds ACCESS EXCLUSIVE on a table from another session until dropped, so a pg_dump that
/// reaches that table waits: the dump is then provably in progress, with its snapshot taken.
pub struct TableLock {
    child: std::process::Child,
}

impl TableLock {
    pub fn new(db: &str, table: &str) -> TableLock {
        Self::hold(
            db,
            &format!("BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"),
        )
    }

    /// A session that ran `sql` and stays connected until dropped.
    pub fn hold(db: &str, sql: &str) -> TableLock {
        use std::io::{BufRead, Write};
        let mut child = Command::new(pg_tool("psql"))
            .args([
                "-X",
                "-q",
                "-At",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-p",
                &env().pg_port,
                "-d",
                db,
            ])
            .env("PGPASSWORD", &env().pg_password)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, "{sql}; SELECT 'locked';").unwrap();
        stdin.flush().unwrap();
        let mut reader = std::io::BufReader::new(child.stdout.as_mut().unwrap());
        loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "the session failed: {sql}"
            );
            if line.trim() == "locked" {
                break;
            }
        }
        TableLock { child }
    }
}

impl Drop for TableLock {
    fn drop(&mut self) {
        use std::io::Write;
        if let Some(stdin) = self.child.stdin.as_mut() {
            let _ = writeln!(stdin, "ROLLBACK; SELECT pg_advisory_unlock_all();");
            let _ = writeln!(stdin, "\\q");
        }
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Waits until a pg_dump connected to `db` is blocked on a table lock.
pub fn wait_for_blocked_pg_dump(db: &str) {
    wait_until("pg_dump to wait on the table lock", 60, || {
        psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
                 AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE%'"
            ),
        ) == "1"
    });
}

/// A directory with a `pg_dump` script standing in front of the real one.
pub fn wrapped_pg_dump(script_body: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pg_dump");
    let real = pg_tool("pg_dump");
    std::fs::write(
        &path,
        format!("#!/bin/sh\nREAL='{}'\n{script_body}\n", real.display()),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// URL of `db` for the role `tlsonly`, which pg_hba.conf admits over TLS only.
pub fn tls_url(db: &str, params: &str) -> String {
    let port = &env().pg_port;
    let pw = &env().pg_password;
    format!("postgresql://tlsonly:{pw}@127.0.0.1:{port}/{db}?{params}")
}

pub fn test_ca() -> String {
    var("PGSAFE_TEST_PG_CA")
}

/// `pg_dump --schema-only` of a database, for comparing two databases' schemas.
pub fn schema_of(db: &str) -> String {
    let out = Command::new(pg_tool("pg_dump"))
        .args([
            "--schema-only",
            "--no-owner",
            "--no-acl",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
            &env().pg_port,
            "-d",
            db,
        ])
        .env("PGPASSWORD", &env().pg_password)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_dump --schema-only: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // pg_dump 15.14+ brackets scripts with \restrict <random key>: not part of the schema.
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts two database states are equal, showing the first differing line only.
pub fn assert_same_state(
    actual: &(String, Vec<(String, String)>),
    expected: &(String, Vec<(String, String)>),
    what: &str,
) {
    if actual.0 != expected.0 {
        let diff = actual
            .0
            .lines()
            .zip(expected.0.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("got {a:?}, expected {b:?}"))
            .unwrap_or_else(|| "different lengths".into());
        panic!("{what}: schemas differ: {diff}");
    }
    assert_eq!(actual.1, expected.1, "{what}: table contents differ");
}

/// Every table's ordered contents, hashed: equal hashes mean equal data.
pub fn contents_of(db: &str) -> Vec<(String, String)> {
    let tables = psql(
        db,
        "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY schemaname, relname",
    );
    tables
        .lines()
        .map(|t| {
            let h = psql(db, &format!("SELECT coalesce(md5(string_agg(x::text, E'\\n' ORDER BY x::text)), 'empty') FROM {t} x"));
            (t.to_string(), h)
        })
        .collect()
}

/// Schema and contents together: the state a restore must reproduce exactly.
pub fn state_of(db: &str) -> (String, Vec<(String, String)>) {
    (schema_of(db), contents_of(db))
}

pub fn database_exists(db: &str) -> bool {
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
    ) == "1"
}

/// Databases whose name starts with `prefix`.
pub fn databases_like(prefix: &str) -> Vec<String> {
    let out = psql(
        "postgres",
        &format!(
            "SELECT datname FROM pg_database WHERE starts_with(datname, '{prefix}') ORDER BY 1"
        ),
    );
    out.lines().map(str::to_string).collect()
}

pub fn drop_db(db: &str) {
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"),
    );
}

/// A second, throwaway PostgreSQL cluster of the test's own (initdb on a free port), for tests
/// that need a whole fresh server: globals, `backup --all`. Stopped and deleted when dropped.
/// As root it runs as the `postgres` user, like scripts/env.sh's cluster.
pub struct Cluster {
    pub port: u16,
    pub password: String,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn as_pg_owner(program: &Path) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn check(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("pgsafe-cluster")
            .tempdir_in("/tmp")
            .unwrap();
        let password = format!("cl-{}", &sha256_hex(unique("pw").as_bytes())[..20]);
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).unwrap();
        if is_root() {
            check(
                Command::new("chown")
                    .args(["-R", "postgres:"])
                    .arg(dir.path())
                    .output()
                    .unwrap(),
                "chown",
            );
        }
        let data = dir.path().join("data");
        check(
            as_pg_owner(&pg_tool("initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ])
                .args(["--encoding=UTF8", "--locale=C.UTF-8"])
                .arg(format!("--pwfile={}", pwfile.display()))
                .output()
                .unwrap(),
            "initdb",
        );
        let port = free_port();
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            dir.path().display()
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut f, conf.as_bytes()).unwrap();
        check(
            as_pg_owner(&pg_tool("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.path().join("server.log"))
                .args(["-w", "start"])
                .output()
                .unwrap(),
            "pg_ctl start",
        );
        Cluster {
            port,
            password,
            dir,
        }
    }

    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://postgres:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql_at(&self.port.to_string(), &self.password, db, sql)
    }

    pub fn psql_file(&self, db: &str, file: &Path) {
        let out = Command::new(pg_tool("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
            .args([
                "-U",
                "postgres",
                "-p",
                &self.port.to_string(),
                "-d",
                db,
                "-f",
            ])
            .arg(file)
            .env("PGPASSWORD", &self.password)
            .output()
            .expect("psql runs");
        check(out, "psql -f");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_pg_owner(&pg_tool("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// One HTTP request a [`Receiver`] took.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: String,
}

impl Request {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A small HTTP server on 127.0.0.1 that records every request and answers 200: the webhook
/// and healthchecks endpoints of the notification tests.
pub struct Receiver {
    pub url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Request>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    continue;
                }
                let mut parts = line.split_whitespace();
                let method = parts.next().unwrap_or("").to_string();
                let path = parts.next().unwrap_or("").to_string();
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; length];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                seen.lock().unwrap().push(Request {
                    method,
                    path,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        Receiver { url, requests }
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}
