//! Compatibility with the ecosystem's poll-based I/O traits and hyper's runtime traits.
//!
//! [`AsyncIo`] wraps a [`TcpStream`](crate::net::TcpStream) or one of its owned halves and
//! implements tokio's `AsyncRead`/`AsyncWrite` (cargo feature `tokio-io`) and futures-io's
//! (feature `futures-io`). With feature `hyper`, `HyperExecutor` and `HyperTimer` give hyper
//! (and so axum) what it needs to run here:
//!
//! ```ignore
//! let io = hyper_util::rt::TokioIo::new(runtime::compat::AsyncIo::new(stream));
//! hyper_util::server::conn::auto::Builder::new(runtime::compat::HyperExecutor)
//!     .serve_connection(io, service)
//!     .await
//! ```
//!
//! On epoll a read or write is the syscall, made during the poll into or from the caller's
//! buffer. On io_uring a read copies from the socket's multishot receive queue into the
//! caller's buffer (what an owned-buffer read does too); a write copies the caller's bytes into
//! a buffer the adapter owns and submits it, accepting the bytes at once: `poll_flush` waits until
//! they are sent, and if the adapter is dropped first they are still sent. Dropping the adapter
//! or a read at any point loses no byte that a read did not return and sends no byte twice.

#[cfg(feature = "futures-io")]
mod futures_io;
#[cfg(feature = "hyper")]
mod hyper;
#[cfg(feature = "tokio-io")]
mod tokio_io;

#[cfg(feature = "hyper")]
pub use self::hyper::{HyperExecutor, HyperTimer};

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::task::{Context, Poll};

use ::net::{PollIo, ReadStream, StreamSource, WriteStream};

/// A stream with poll-based reads and writes, for the ecosystem's `AsyncRead`/`AsyncWrite`
/// traits (see the [module](self) documentation).
#[derive(Debug)]
pub struct AsyncIo<T: StreamSource> {
    io: PollIo<T::Source>,
    inner: T,
}

impl<T: StreamSource> AsyncIo<T> {
    /// Wraps `inner` (a stream, or one of its owned halves).
    pub fn new(inner: T) -> Self {
        AsyncIo {
            io: PollIo::new(inner.stream_source().clone()),
            inner,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: ReadStream> AsyncIo<T> {
    /// Reads into `dst`: `Ready(Ok(n))` once `n` bytes were written at its start (0 at end of
    /// file).
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_read(cx, dst)
    }
}

impl<T: WriteStream> AsyncIo<T> {
    /// Writes some of `bufs`' bytes in order; `Ready(Ok(n))` once `n` bytes are taken.
    pub fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write(cx, bufs)
    }

    /// Waits until the bytes taken by writes were sent.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_flush(cx)
    }

    /// Flushes, then shuts down the write direction.
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.poll_shutdown(cx)
    }
}
