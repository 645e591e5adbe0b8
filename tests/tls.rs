//! sslmode as libpq means it, for pgsafe's own connection and for pg_dump. The role `tlsonly`
//! may only connect over TLS, so a backup that succeeds proves both connections were encrypted.

mod common;

use common::*;

fn backup(url: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    run(pgsafe()
        .args(["backup", "--repo"])
        .arg(dir.path())
        .env("HOME", home.path())
        .env("DATABASE_URL", url))
}

#[test]
fn sslmodes_against_a_tls_only_role() {
    let db = fixture_db("tls");
    let ca = test_ca();

    for mode in ["require", "prefer"] {
        let out = backup(&tls_url(&db, &format!("sslmode={mode}")));
        out.assert_code(0);
    }
    // The server's certificate is for db.pgsafe.test: the chain verifies, the name does not.
    backup(&tls_url(
        &db,
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ))
    .assert_code(0);
    let wrong_name = backup(&tls_url(
        &db,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ));
    wrong_name.assert_code(1);
    assert!(
        wrong_name.stderr.contains("certificate"),
        "{}",
        wrong_name.stderr
    );

    let plain = backup(&tls_url(&db, "sslmode=disable"));
    plain.assert_code(1);
    assert!(
        plain.stderr.contains("pg_hba.conf rejects connection"),
        "{}",
        plain.stderr
    );

    let no_root = backup(&tls_url(&db, "sslmode=verify-full"));
    no_root.assert_code(2);
    assert!(
        no_root.stderr.contains("HINT: set sslrootcert="),
        "{}",
        no_root.stderr
    );
    for out in [&wrong_name, &plain, &no_root] {
        assert!(!out.stderr.contains(env().pg_password.as_str()));
    }
    psql("postgres", &format!("DROP DATABASE \"{db}\""));
}
