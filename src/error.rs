//! pgsafe's error kinds and the exit codes they map to.
//!
//! Library code returns `anyhow::Error`s that carry an [`Error`] somewhere in their chain when the
//! failure has a specific meaning (refused, corrupt, interrupted...). `main` looks the kind up with
//! [`classify`] and exits with its documented code; anything else is a plain failure (1).

use std::fmt;

/// Documented exit codes (README, "Exit codes").
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const REFUSED: i32 = 3;
    pub const INTEGRITY: i32 = 4;
    pub const CORRUPT: i32 = 5;
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The operation failed; see the message.
    Failed,
    /// Bad arguments or configuration; nothing was attempted.
    Usage,
    /// A safety interlock refused; nothing changed.
    Refused,
    /// The restored data does not match the backup.
    Integrity,
    /// The backup is corrupt: checksum mismatch, missing or invalid manifest.
    Corrupt,
    /// Stopped by SIGINT or SIGTERM.
    Interrupted,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Failed => exit::FAILED,
            Kind::Usage => exit::USAGE,
            Kind::Refused => exit::REFUSED,
            Kind::Integrity => exit::INTEGRITY,
            Kind::Corrupt => exit::CORRUPT,
            Kind::Interrupted => exit::INTERRUPTED,
        }
    }
}

/// An error with a meaning for the exit code, and an optional hint telling the user what to do.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
}

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Kind::Usage, message)
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }

    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(Kind::Corrupt, message)
    }

    /// A safety interlock said no; nothing was changed.
    pub fn refused(interlock: &str, message: impl std::fmt::Display) -> Self {
        Self::new(
            Kind::Refused,
            format!("refused by the {interlock} interlock: {message}"),
        )
    }

    pub fn integrity(message: impl Into<String>) -> Self {
        Self::new(Kind::Integrity, message)
    }

    pub fn interrupted() -> Self {
        Self::new(Kind::Interrupted, "interrupted by a signal")
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// The exit code and hint of an error chain: the first pgsafe [`Error`] found decides.
pub fn classify(err: &anyhow::Error) -> (i32, Option<String>) {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return (e.kind.exit_code(), e.hint.clone());
        }
    }
    (exit::FAILED, None)
}

/// True when the chain says the operation was interrupted by a signal.
pub fn is_interrupted(err: &anyhow::Error) -> bool {
    classify(err).0 == exit::INTERRUPTED
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn classify_finds_the_kind_under_context() {
        let err: anyhow::Result<()> =
            Err(Error::corrupt("sha mismatch").hint("re-run backup").into());
        let err = err.context("restore failed").unwrap_err();
        assert_eq!(
            classify(&err),
            (exit::CORRUPT, Some("re-run backup".into()))
        );
    }

    #[test]
    fn plain_errors_are_failures() {
        let err = anyhow::anyhow!("boom");
        assert_eq!(classify(&err), (exit::FAILED, None));
    }
}
