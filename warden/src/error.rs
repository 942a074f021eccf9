//! One error type for every command: what went wrong, where, and which exit
//! status it maps to (2: usage or validation, 1: a runtime failure).

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// Bad input: a malformed value, an unknown name, a conflict the caller
    /// must resolve. Exit 2, nothing changed.
    Invalid(String),
    /// Bad input naming something that does not exist (a device id or MAC):
    /// exit 2 like [`Error::Invalid`]; the HTTP API answers 404.
    NotFound(String),
    /// The input was fine but the work failed: a database that cannot be
    /// reached, a full port range, a file that cannot be written. Exit 1.
    Runtime(String),
    /// `connect` ran ssh and it exited with this status: passed on as is,
    /// with nothing printed (ssh said what went wrong).
    Child(i32),
}

impl Error {
    pub fn invalid(m: impl Into<String>) -> Self {
        Error::Invalid(m.into())
    }
    pub fn runtime(m: impl Into<String>) -> Self {
        Error::Runtime(m.into())
    }
    /// Bad rows of an input file, one line each; the last says that
    /// nothing was imported.
    pub fn bad_rows(mut errors: Vec<String>) -> Self {
        let n = errors.len();
        if let Some(last) = errors.last_mut() {
            last.push_str(&format!(" ({n} bad row(s); nothing imported)"));
        }
        Error::invalid(errors.join("\n"))
    }
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) | Error::NotFound(_) => 2,
            Error::Runtime(_) => 1,
            Error::Child(code) => *code,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the cause held.
        let m = match self {
            Error::Invalid(m) | Error::NotFound(m) | Error::Runtime(m) => m,
            Error::Child(_) => "",
        };
        f.write_str(m)
    }
}

impl std::error::Error for Error {}
