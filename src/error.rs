//! The one error type of `retort`, and how errors map to exit codes.
//!
//! Exit code 1 means the user can fix it (bad flag, bad pipeline file, bad input data);
//! exit code 2 means something failed at run time (I/O, a broken invariant).

use std::fmt;

/// Convenient result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Who can fix an error, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input, flags or configuration: exit code 1.
    User,
    /// A failure while running: exit code 2.
    Runtime,
}

/// An error with a message, optional cause chain and an optional hint for the user.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    hint: Option<String>,
    /// Extra lines printed under the message (e.g. every problem of a pipeline file).
    details: Vec<String>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    /// An error the user can fix (exit code 1).
    pub fn user(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::User, message)
    }

    /// A run-time failure (exit code 2).
    pub fn runtime(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Runtime, message)
    }

    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            details: Vec::new(),
            source: None,
        }
    }

    /// Adds a `hint:` line telling the user what to do next.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Attaches the underlying cause, printed as `Caused by:` lines.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Adds detail lines printed under the message.
    pub fn with_details(mut self, details: Vec<String>) -> Self {
        self.details = details;
        self
    }

    /// Who can fix this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The hint, if any.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The detail lines, if any.
    pub fn details(&self) -> &[String] {
        &self.details
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::User => 1,
            ErrorKind::Runtime => 2,
        }
    }

    /// Prefixes the message with context, keeping kind, hint and cause.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        let prefix = format!("{context}: ");
        if !self.message.starts_with(&prefix) {
            self.message = format!("{prefix}{}", self.message);
        }
        self
    }

    /// Renders the error the way the command line prints it.
    pub fn render(&self) -> String {
        use std::error::Error as _;
        let mut out = format!("error: {}\n", self.message);
        for d in &self.details {
            out.push_str(&format!("  - {d}\n"));
        }
        let mut cause = self.source();
        if cause.is_some() {
            out.push_str("Caused by:\n");
        }
        while let Some(c) = cause {
            out.push_str(&format!("    {c}\n"));
            cause = c.source();
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("hint: {h}\n"));
        }
        out
    }
}

/// Wraps an I/O error, naming what was being done: a user error (exit 1) when the user can fix
/// the path (missing, a file where a folder belongs, no permission, read-only), a run-time
/// failure (exit 2) otherwise; a full disk is said plainly.
pub fn io_error(what: impl fmt::Display, e: std::io::Error) -> Error {
    use std::io::ErrorKind as Io;
    if e.kind() == Io::StorageFull {
        return disk_full(what, e);
    }
    let kind = match e.kind() {
        Io::NotFound
        | Io::AlreadyExists
        | Io::NotADirectory
        | Io::IsADirectory
        | Io::PermissionDenied
        | Io::ReadOnlyFilesystem => ErrorKind::User,
        _ => ErrorKind::Runtime,
    };
    Error::new(kind, what.to_string()).with_source(e)
}

/// The error for a full disk, said plainly: the run can be resumed once there is room.
fn disk_full(what: impl fmt::Display, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::runtime(format!("{what}: no space left on device"))
        .with_source(e)
        .with_hint("free some space (or write elsewhere) and run the same command again: it resumes after the last committed part")
}

/// Whether `e` or one of its causes is an I/O error saying the disk is full.
fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::StorageFull {
                return true;
            }
        }
        if c.to_string().contains("No space left on device") {
            return true;
        }
        cause = c.source();
    }
    false
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::runtime("arrow error").with_source(e)
    }
}

impl From<parquet::errors::ParquetError> for Error {
    fn from(e: parquet::errors::ParquetError) -> Self {
        if is_disk_full(&e) {
            return disk_full("cannot write Parquet", e);
        }
        Error::runtime("parquet error").with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_has_cause_and_hint() {
        let e = Error::user("cannot read `x.parquet`")
            .with_source(std::io::Error::other("disk on fire"))
            .with_hint("check the path");
        assert_eq!(
            e.render(),
            "error: cannot read `x.parquet`\nCaused by:\n    disk on fire\nhint: check the path\n"
        );
        assert_eq!(e.exit_code(), 1);
        assert_eq!(Error::runtime("x").exit_code(), 2);
    }

    #[test]
    fn context_is_added_once() {
        let e = Error::user("`p` is 2")
            .context("stage `a`")
            .context("stage `a`");
        assert_eq!(e.to_string(), "stage `a`: `p` is 2");
        let e = e.context("pipeline `x`");
        assert_eq!(e.to_string(), "pipeline `x`: stage `a`: `p` is 2");
    }

    #[test]
    fn io_errors_the_user_can_fix_exit_1_and_a_full_disk_is_said_plainly() {
        use std::io::{Error as Io, ErrorKind as K};
        for k in [
            K::NotFound,
            K::AlreadyExists,
            K::NotADirectory,
            K::PermissionDenied,
        ] {
            assert_eq!(
                io_error("cannot create `out`", Io::from(k)).exit_code(),
                1,
                "{k:?}"
            );
        }
        assert_eq!(io_error("x", Io::from(K::Interrupted)).exit_code(), 2);
        let full = io_error(
            "cannot write `out/part-00000.parquet`",
            Io::from(K::StorageFull),
        );
        assert_eq!(full.exit_code(), 2);
        assert!(
            full.to_string().ends_with(": no space left on device"),
            "{full}"
        );
        assert!(full.hint().unwrap().contains("run the same command again"));
        let pq = parquet::errors::ParquetError::External(Box::new(Io::from_raw_os_error(28)));
        let e = Error::from(pq);
        assert!(e.to_string().contains("no space left on device"), "{e}");
    }
}
