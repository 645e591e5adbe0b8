//! PostgreSQL: connection settings, the client programs, pgsafe's own queries.

pub mod conninfo;
pub mod dump;
pub mod session;
pub mod tls;
pub mod tools;

pub use conninfo::ConnInfo;
pub use tools::PgTool;
