//! One error type for every reader and writer: which file, which key inside
//! it, and what was expected, so the message alone tells the user what to fix.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// The file name as the user gave it (or the archive member).
    pub file: String,
    /// The key, column or line inside the file; empty when it is the file as a whole.
    pub key: String,
    pub message: String,
}

impl Error {
    pub fn new(file: &str, key: &str, message: impl Into<String>) -> Error {
        Error {
            file: file.to_string(),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.key, self.message)
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Attaches file and key to errors from lower layers.
pub trait Context<T> {
    fn at(self, file: &str, key: &str) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn at(self, file: &str, key: &str) -> Result<T> {
        self.map_err(|e| Error::new(file, key, e.to_string()))
    }
}
