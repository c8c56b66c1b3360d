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

/// Runs a third-party reader on untrusted bytes. Its arithmetic on a
/// corrupt file's sizes and offsets is checked (overflow checks stay on for
/// it in every profile), so a bad offset panics instead of misplacing data;
/// natively that panic becomes this named error, without its message on
/// stderr. In wasm a panic ends the worker, which the page restarts.
pub(crate) fn guarded<T>(file: &str, read: impl FnOnce() -> Result<T>) -> Result<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        caught(read).unwrap_or_else(|why| {
            Err(Error::new(
                file,
                "",
                format!("could not be read: the HDF5 reader failed on it ({why}); the file is likely corrupt"),
            ))
        })
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = file;
        read()
    }
}

/// Runs `f`; a panic in it comes back as its message, without printing
/// it on stderr (the caller names what failed).
#[cfg(not(target_arch = "wasm32"))]
pub fn caught<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    use std::cell::Cell;
    use std::panic;
    thread_local!(static QUIET: Cell<bool> = const { Cell::new(false) });
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info)
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let got = panic::catch_unwind(panic::AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    got.map_err(|p| {
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "an internal error".into())
    })
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn a_reader_that_panics_is_a_named_error() {
        let got: Result<()> = guarded("bad.h5ad", || {
            let offsets = [u64::MAX, 1];
            let end = offsets
                .iter()
                .try_fold(0u64, |a, &b| a.checked_add(b))
                .expect("attempt to add with overflow");
            Err(Error::new("bad.h5ad", "", format!("unreachable {end}")))
        });
        let e = got.unwrap_err().to_string();
        assert!(e.starts_with("bad.h5ad: could not be read"), "{e}");
        assert!(e.contains("overflow"), "{e}");
        assert_eq!(guarded("ok.h5ad", || Ok(3)).unwrap(), 3);
    }
}
