//! PostgreSQL: connection settings, the client programs, pgsafe's own queries.

pub mod conninfo;
pub mod dump;
pub mod globals;
pub mod migrations;
pub mod session;
pub mod tls;
pub mod tools;

pub use conninfo::ConnInfo;
pub use tools::PgTool;

/// `"name"`, with embedded quotes doubled: an identifier safe in any SQL text.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `'text'`, with quotes doubled and backslashes kept literal (E'' is never used).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
