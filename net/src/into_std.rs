//! The error of handing a socket over to `std` (`into_std`), which gives the socket back.

use std::fmt;
use std::io;

/// Why `into_std` refused, with the socket it was called on, still working.
pub struct IntoStdError<T> {
    error: io::Error,
    socket: T,
}

impl<T> IntoStdError<T> {
    pub(crate) fn new(error: io::Error, socket: T) -> Self {
        IntoStdError { error, socket }
    }

    /// Why it was refused.
    pub fn error(&self) -> &io::Error {
        &self.error
    }

    /// The socket, unchanged.
    pub fn into_inner(self) -> T {
        self.socket
    }
}

impl<T> fmt::Debug for IntoStdError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoStdError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for IntoStdError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot hand the socket over: {}", self.error)
    }
}

impl<T> std::error::Error for IntoStdError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<IntoStdError<T>> for io::Error {
    fn from(e: IntoStdError<T>) -> io::Error {
        io::Error::new(e.error.kind(), e.to_string())
    }
}
