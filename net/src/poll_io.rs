//! Poll-based reads and writes over a socket's [`Source`], for the ecosystem's `AsyncRead` and
//! `AsyncWrite` traits, which lend their buffers for one poll only.
//!
//! A read goes through [`Source::poll_lent`] when the backend can do it within the poll (epoll's
//! syscall; io_uring's copy from the multishot receive queue), straight into the caller's
//! buffer. Otherwise (a one-shot receive on io_uring) it runs an owned receive into a buffer of
//! the caller's size and copies from it. A write is likewise a lent syscall on epoll; on io_uring
//! the bytes are staged in a buffer this adapter owns and sent by an owned operation, so the
//! write is accepted at once and [`poll_flush`](PollIo::poll_flush) waits for it. A staged write
//! still in flight when the adapter is dropped runs to completion on its own (it owns its buffer
//! and the socket), so accepted bytes always reach the peer.

use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use runtime_core::{ops, BufResult, Lent, Source};

/// The most bytes one write stages: a larger write is accepted in parts.
const MAX_STAGED: usize = 256 * 1024;

/// The most bytes one owned receive asks for.
const MAX_READ: usize = 64 * 1024;

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The poll-side state of one socket: an owned receive or staged write in flight, and bytes
/// received but not yet handed out.
pub struct PollIo<S: Source> {
    source: Arc<S>,
    /// An owned receive in flight; its buffer comes back with the result.
    reading: Option<Boxed<BufResult<usize, Vec<u8>>>>,
    /// Bytes an owned receive got beyond what the caller's buffer took (only when a later
    /// caller lends a smaller buffer than the one the receive was sized for).
    received: Vec<u8>,
    taken: usize,
    /// A staged write in flight.
    writing: Option<Boxed<BufResult<(), Vec<u8>>>>,
    /// The staging buffer, while no write is in flight (kept for its allocation).
    staging: Vec<u8>,
    /// A shutdown of the write side in flight.
    shutting_down: Option<Boxed<io::Result<()>>>,
}

impl<S: Source> std::fmt::Debug for PollIo<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollIo")
            .field("fd", &self.source.as_raw_fd())
            .field("reading", &self.reading.is_some())
            .field("buffered", &(self.received.len() - self.taken))
            .field("writing", &self.writing.is_some())
            .finish()
    }
}

/// Copies as much of `src` as fits into `dst`; returns the count.
fn copy_into(dst: &mut [MaybeUninit<u8>], src: &[u8]) -> usize {
    let n = dst.len().min(src.len());
    for (d, s) in dst[..n].iter_mut().zip(&src[..n]) {
        d.write(*s);
    }
    n
}

impl<S: Source> PollIo<S> {
    /// The poll state of the socket `source`.
    pub fn new(source: Arc<S>) -> Self {
        PollIo {
            source,
            reading: None,
            received: Vec::new(),
            taken: 0,
            writing: None,
            staging: Vec::new(),
            shutting_down: None,
        }
    }

    /// Reads into `dst`: `Ready(Ok(n))` when `n` bytes were written at its start (0 at end of
    /// file, or when `dst` is empty).
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        dst: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        if dst.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if self.taken < self.received.len() {
                let n = copy_into(dst, &self.received[self.taken..]);
                self.taken += n;
                return Poll::Ready(Ok(n));
            }
            if let Some(reading) = &mut self.reading {
                let BufResult(res, buf) = ready!(reading.as_mut().poll(cx));
                self.reading = None;
                self.received = buf;
                self.taken = 0;
                match res {
                    Ok(0) => return Poll::Ready(Ok(0)),
                    Ok(_) => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            match self.source.poll_lent(&mut Lent::Recv(dst), cx) {
                Some(Poll::Ready(Err(e))) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(poll) => return poll,
                None => {
                    let mut buf = std::mem::take(&mut self.received);
                    buf.clear();
                    let want = dst.len().min(MAX_READ);
                    if buf.capacity() < want {
                        // Zeroed once per allocation: memory checkers that cannot see the
                        // kernel's writes (valgrind) then see defined bytes.
                        buf = vec![0; want];
                        buf.clear();
                    }
                    let source = self.source.clone();
                    self.reading = Some(Box::pin(async move { ops::recv(&*source, buf).await }));
                }
            }
        }
    }

    /// Writes some of `bufs`' bytes: `Ready(Ok(n))` once `n` bytes were sent (epoll) or staged
    /// to be sent (io_uring). An error of an earlier staged write is returned here.
    pub fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_flush(cx))?;
        let mut lent = match bufs {
            [] => return Poll::Ready(Ok(0)),
            [one] => Lent::Send(one),
            many => Lent::SendVectored(many),
        };
        loop {
            match self.source.poll_lent(&mut lent, cx) {
                Some(Poll::Ready(Err(e))) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(poll) => return poll,
                None => break,
            }
        }
        let mut staging = std::mem::take(&mut self.staging);
        staging.clear();
        for buf in bufs {
            let room = MAX_STAGED.saturating_sub(staging.len());
            if room == 0 {
                break;
            }
            staging.extend_from_slice(&buf[..buf.len().min(room)]);
        }
        let staged = staging.len();
        if staged == 0 {
            self.staging = staging;
            return Poll::Ready(Ok(0));
        }
        let source = self.source.clone();
        self.writing = Some(Box::pin(
            async move { ops::send_all(&*source, staging).await },
        ));
        // Start the send now (its completion wakes this task, which flushes or writes next).
        if let Poll::Ready(Err(e)) = self.poll_flush(cx) {
            // Nothing was sent: the caller hears that its bytes were not taken.
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(staged))
    }

    /// Waits until every staged byte was sent; returns the error of a staged write that failed.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(writing) = &mut self.writing else {
            return Poll::Ready(Ok(()));
        };
        let BufResult(res, buf) = ready!(writing.as_mut().poll(cx));
        self.writing = None;
        self.staging = buf;
        Poll::Ready(res)
    }

    /// Flushes, then shuts down the write side (the peer reads end of file).
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(cx))?;
        let shutting_down = self.shutting_down.get_or_insert_with(|| {
            let source = self.source.clone();
            Box::pin(async move { ops::shutdown(&*source, Shutdown::Write).await })
        });
        let res = ready!(shutting_down.as_mut().poll(cx));
        self.shutting_down = None;
        Poll::Ready(res)
    }
}

impl<S: Source> Drop for PollIo<S> {
    fn drop(&mut self) {
        // Bytes a write accepted must reach the peer: the staged send finishes on its own.
        if let Some(writing) = self.writing.take() {
            runtime_core::detach(writing);
        }
    }
}

/// A stream type that [`PollIo`] can drive: it gives its socket's source.
pub trait StreamSource {
    /// The driver's source type.
    type Source: Source;

    /// The socket's source, shared with the stream.
    fn stream_source(&self) -> &Arc<Self::Source>;
}

/// A [`StreamSource`] that may be read (a stream, or its read half).
pub trait ReadStream: StreamSource {}

/// A [`StreamSource`] that may be written (a stream, or its write half).
pub trait WriteStream: StreamSource {}
