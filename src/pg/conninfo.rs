//! libpq-style connection settings: a URL or `key=value` string, the PG* environment variables,
//! and the password file, resolved the way libpq resolves them.
//!
//! The password only ever leaves this module through [`ConnInfo::child_env`] (a child's environment)
//! and [`ConnInfo::pg_config`] (our own connection); [`ConnInfo::redacted`] and `Debug` never show it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Connection parameters pgsafe understands, with the environment variable libpq reads for each.
const PARAMS: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("dbname", "PGDATABASE"),
    ("password", "PGPASSWORD"),
    ("passfile", "PGPASSFILE"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("application_name", "PGAPPNAME"),
    ("options", "PGOPTIONS"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
];

/// Variables that could send a child somewhere other than where `ConnInfo` says.
const CHILD_ENV_REMOVED: &[&str] = &["PGSERVICE", "PGSERVICEFILE", "PGHOSTADDR", "PGREQUIRESSL"];

#[derive(Clone, PartialEq, Eq)]
pub struct ConnInfo {
    params: BTreeMap<String, String>,
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl ConnInfo {
    /// Resolves the connection from an optional URL/conninfo string, then the environment, then
    /// libpq's defaults; the password falls back to the password file.
    pub fn resolve(
        url: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnInfo, Error> {
        let mut params = BTreeMap::new();
        for (key, var) in PARAMS {
            if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                params.insert(key.to_string(), v);
            }
        }
        if let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) {
            for (k, v) in parse(url)? {
                params.insert(k, v);
            }
        }
        let mut info = ConnInfo { params };
        info.apply_defaults(env);
        info.validate()?;
        if info.password().is_none() {
            let passfile = info
                .params
                .get("passfile")
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pgpass")));
            if let Some(path) = passfile {
                if let Some(pw) = passfile_lookup(&path, &info) {
                    info.params.insert("password".into(), pw);
                }
            }
        }
        Ok(info)
    }

    fn apply_defaults(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let p = &mut self.params;
        p.entry("host".into()).or_insert_with(|| {
            if Path::new("/var/run/postgresql").is_dir() {
                "/var/run/postgresql".into()
            } else {
                "localhost".into()
            }
        });
        p.entry("port".into()).or_insert_with(|| "5432".into());
        let user = p
            .entry("user".into())
            .or_insert_with(|| env("USER").unwrap_or_else(|| "postgres".into()))
            .clone();
        p.entry("dbname".into()).or_insert(user);
        p.entry("sslmode".into()).or_insert_with(|| "prefer".into());
    }

    fn validate(&self) -> Result<(), Error> {
        let host = self.host();
        if host.contains(',') {
            return Err(
                Error::usage(format!("several hosts ({host}) are not supported"))
                    .hint("give the one server to back up or restore"),
            );
        }
        self.params["port"].parse::<u16>().map_err(|_| {
            Error::usage(format!("invalid port {:?}", self.params["port"]))
                .hint("the port is a number such as 5432")
        })?;
        let mode = self.sslmode();
        if !matches!(
            mode,
            "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full"
        ) {
            return Err(Error::usage(format!("invalid sslmode {mode:?}"))
                .hint("use disable, allow, prefer, require, verify-ca or verify-full"));
        }
        Ok(())
    }

    pub fn host(&self) -> &str {
        &self.params["host"]
    }

    pub fn port(&self) -> u16 {
        self.params["port"].parse().unwrap_or(5432)
    }

    pub fn user(&self) -> &str {
        &self.params["user"]
    }

    pub fn dbname(&self) -> &str {
        &self.params["dbname"]
    }

    pub fn sslmode(&self) -> &str {
        &self.params["sslmode"]
    }

    fn password(&self) -> Option<&str> {
        self.params.get("password").map(String::as_str)
    }

    /// The same server and credentials, another database.
    pub fn with_dbname(&self, dbname: &str) -> ConnInfo {
        let mut c = self.clone();
        c.params.insert("dbname".into(), dbname.into());
        c
    }

    /// A URL for humans and logs: never the password.
    pub fn redacted(&self) -> String {
        let host = self.host();
        let host = if host.starts_with('/') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let pw = if self.password().is_some() {
            ":***"
        } else {
            ""
        };
        format!(
            "postgresql://{}{}@{}:{}/{}",
            self.user(),
            pw,
            host,
            self.port(),
            self.dbname()
        )
    }

    /// The environment a libpq child (pg_dump, pg_restore, psql) needs to reach this database.
    /// Returns the variables to set and those to remove; nothing goes on the command line.
    pub fn child_env(&self) -> (Vec<(&'static str, String)>, &'static [&'static str]) {
        let mut set: Vec<(&'static str, String)> = PARAMS
            .iter()
            .filter_map(|(k, var)| self.params.get(*k).map(|v| (*var, v.clone())))
            .collect();
        if !self.params.contains_key("application_name") {
            set.push(("PGAPPNAME", "pgsafe".into()));
        }
        (set, CHILD_ENV_REMOVED)
    }

    /// The TLS connector pgsafe's own connection needs (`None` for sslmode=disable).
    pub fn tls(&self) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, Error> {
        let get = |k: &str| self.params.get(k).map(String::as_str);
        super::tls::connector(
            self.sslmode(),
            get("sslrootcert"),
            get("sslcert"),
            get("sslkey"),
        )
    }

    /// Settings for pgsafe's own connection (metadata queries, snapshots, interlocks).
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, Error> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(self.host())
            .port(self.port())
            .user(self.user())
            .dbname(self.dbname())
            .application_name(
                self.params
                    .get("application_name")
                    .map(String::as_str)
                    .unwrap_or("pgsafe"),
            );
        if let Some(pw) = self.password() {
            cfg.password(pw);
        }
        if let Some(t) = self.params.get("connect_timeout") {
            if let Ok(secs) = t.parse::<u64>() {
                cfg.connect_timeout(std::time::Duration::from_secs(secs.max(2)));
            }
        }
        if let Some(opts) = self.params.get("options") {
            cfg.options(opts);
        }
        cfg.ssl_mode(match self.sslmode() {
            "disable" => tokio_postgres::config::SslMode::Disable,
            "allow" | "prefer" => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(cfg)
    }
}

/// Parses a `postgres://` URL, a `key=value` conninfo string, or a bare database name.
fn parse(input: &str) -> Result<Vec<(String, String)>, Error> {
    if input.starts_with("postgres://") || input.starts_with("postgresql://") {
        parse_url(input)
    } else if input.contains('=') {
        parse_keywords(input)
    } else {
        Ok(vec![("dbname".into(), input.to_string())])
    }
}

fn known(key: &str) -> Result<(), Error> {
    if PARAMS.iter().any(|(k, _)| *k == key) {
        Ok(())
    } else {
        Err(
            Error::usage(format!("unsupported connection parameter {key:?}")).hint(format!(
                "supported parameters: {}",
                PARAMS
                    .iter()
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        )
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn parse_url(input: &str) -> Result<Vec<(String, String)>, Error> {
    // Never echo the input: it may hold a password.
    let url = url::Url::parse(input).map_err(|e| {
        Error::usage(format!("invalid database URL: {e}"))
            .hint("use postgresql://user:password@host:port/dbname?sslmode=prefer")
    })?;
    let mut out = Vec::new();
    if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        out.push(("host".into(), percent_decode(host)));
    }
    if let Some(port) = url.port() {
        out.push(("port".into(), port.to_string()));
    }
    if !url.username().is_empty() {
        out.push(("user".into(), percent_decode(url.username())));
    }
    if let Some(pw) = url.password() {
        out.push(("password".into(), percent_decode(pw)));
    }
    let db = url.path().trim_start_matches('/');
    if !db.is_empty() {
        out.push(("dbname".into(), percent_decode(db)));
    }
    for (k, v) in url.query_pairs() {
        known(&k)?;
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> String {
    // `+` is literal in the authority and path, unlike in a query string.
    decode(&s.replace('+', "%2B"))
}

fn parse_keywords(input: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(Error::usage(format!(
                "invalid connection string: missing \"=\" after {key:?}"
            ))
            .hint("write key=value pairs, e.g. \"host=localhost dbname=app\""));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(Error::usage(format!(
                    "invalid connection string: unterminated quote in the value of {key:?}"
                )));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                chars.next();
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        known(&key)?;
        out.push((key, value));
    }
    Ok(out)
}

/// Looks the password up in a libpq password file (`host:port:db:user:password`, `*` matches all).
/// Like libpq, ignores a file that others can read.
fn passfile_lookup(path: &Path, info: &ConnInfo) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "password file {} has group or world access; ignored (chmod 0600 it)",
            path.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    passfile_match(&text, info)
}

fn passfile_match(text: &str, info: &ConnInfo) -> Option<String> {
    let host = info.host();
    let port = info.port().to_string();
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_passfile_line(line);
        if fields.len() != 5 {
            continue;
        }
        let host_ok = fields[0] == "*"
            || fields[0] == host
            || (host.starts_with('/') && fields[0] == "localhost");
        if host_ok
            && (fields[1] == "*" || fields[1] == port)
            && (fields[2] == "*" || fields[2] == info.dbname())
            && (fields[3] == "*" || fields[3] == info.user())
        {
            return Some(fields[4].clone());
        }
    }
    None
}

fn split_passfile_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut().unwrap().extend(chars.next()),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn url_parts_and_redaction() {
        let c = ConnInfo::resolve(
            Some("postgresql://app:s%40cret@db.example:6543/gestor_tickets?sslmode=disable"),
            &no_env,
        )
        .unwrap();
        assert_eq!(c.host(), "db.example");
        assert_eq!(c.port(), 6543);
        assert_eq!(c.user(), "app");
        assert_eq!(c.dbname(), "gestor_tickets");
        assert_eq!(c.password(), Some("s@cret"));
        assert_eq!(c.sslmode(), "disable");
        let shown = c.redacted();
        assert!(!shown.contains("s@cret") && !format!("{c:?}").contains("cret"));
        assert_eq!(shown, "postgresql://app:***@db.example:6543/gestor_tickets");
    }

    #[test]
    fn env_fills_what_the_url_leaves_out() {
        let env = |k: &str| match k {
            "PGHOST" => Some("10.0.0.1".to_string()),
            "PGPASSWORD" => Some("envpw".to_string()),
            "PGUSER" => Some("envuser".to_string()),
            _ => None,
        };
        let c = ConnInfo::resolve(Some("postgresql:///shop"), &env).unwrap();
        assert_eq!(c.host(), "10.0.0.1");
        assert_eq!(c.user(), "envuser");
        assert_eq!(c.dbname(), "shop");
        assert_eq!(c.password(), Some("envpw"));
    }

    #[test]
    fn keyword_strings_with_quotes() {
        let c = ConnInfo::resolve(
            Some("host=/tmp/sock port=5433 dbname='my db' password='it\\'s'"),
            &no_env,
        )
        .unwrap();
        assert_eq!(c.host(), "/tmp/sock");
        assert_eq!(c.dbname(), "my db");
        assert_eq!(c.password(), Some("it's"));
        assert_eq!(
            c.redacted(),
            format!("postgresql://{}:***@[/tmp/sock]:5433/my db", c.user())
        );
    }

    #[test]
    fn unknown_parameter_is_named_and_input_not_echoed() {
        let err =
            ConnInfo::resolve(Some("postgresql://u:topsecret@h/db?bogus=1"), &no_env).unwrap_err();
        assert!(err.message.contains("bogus"));
        assert!(!err.message.contains("topsecret"));
        let err =
            ConnInfo::resolve(Some("postgresql://u:topsecret@h:99999/db"), &no_env).unwrap_err();
        assert!(!err.message.contains("topsecret"));
    }

    #[test]
    fn child_env_carries_the_password_and_argv_needs_nothing() {
        let c = ConnInfo::resolve(Some("postgresql://u:pw@h:1/d"), &no_env).unwrap();
        let (set, removed) = c.child_env();
        assert!(set.contains(&("PGPASSWORD", "pw".to_string())));
        assert!(set.contains(&("PGDATABASE", "d".to_string())));
        assert!(removed.contains(&"PGSERVICE"));
    }

    #[test]
    fn passfile_matching() {
        let c = ConnInfo::resolve(Some("postgresql://app@db:5432/shop"), &no_env).unwrap();
        let text = "# comment\nother:5432:*:app:nope\ndb:5432:shop:app:pa\\:ss\n*:*:*:*:fallback\n";
        assert_eq!(passfile_match(text, &c).as_deref(), Some("pa:ss"));
        let c2 = c.with_dbname("else");
        assert_eq!(passfile_match(text, &c2).as_deref(), Some("fallback"));
    }

    #[test]
    fn bare_name_is_a_database() {
        let c = ConnInfo::resolve(Some("gestor_tickets"), &no_env).unwrap();
        assert_eq!(c.dbname(), "gestor_tickets");
    }
}
