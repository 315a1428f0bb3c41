//! Connected stream sockets (TCP, Unix) and their owned halves, written once over a [`Family`].

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use runtime_core::{ops, BufResult, IoBuf, IoBufMut, Source};
use socket2::{SockAddr, SockRef};

use crate::family::Family;
use crate::IntoStdError;

/// A connected stream socket: a TCP connection ([`TcpStream`](crate::TcpStream)) or a Unix one
/// ([`UnixStream`](crate::UnixStream)). Operations take `&self`, so one task may read while
/// another writes; for halves that move to different tasks, see
/// [`into_split`](Stream::into_split).
pub struct Stream<S: Source, F: Family> {
    source: Arc<S>,
    family: PhantomData<fn() -> F>,
}

impl<S: Source, F: Family> fmt::Debug for Stream<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("fd", &self.source.as_raw_fd())
            .finish()
    }
}

impl<S: Source, F: Family> Stream<S, F> {
    pub(crate) fn from_source(source: S) -> Self {
        Stream {
            source: Arc::new(source),
            family: PhantomData,
        }
    }

    /// Registers `socket` (made in the backend's mode) with the calling reactor and connects
    /// it to `addr`.
    pub(crate) async fn connect_socket(
        socket: socket2::Socket,
        addr: SockAddr,
    ) -> io::Result<Self> {
        let source = S::new(socket.into())?;
        ops::connect(&source, addr).await?;
        Ok(Stream::from_source(source))
    }

    /// Registers a connected socket, in the backend's blocking mode, with the calling reactor.
    pub(crate) fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Ok(Self::from_source(S::new(fd)?))
    }

    /// Unregisters the socket and returns it in blocking mode, as `std` makes sockets. Refused
    /// (with the stream given back) while a half, a compat adapter or a write it left running
    /// still holds the socket, or while the runtime holds received bytes no read took.
    pub(crate) fn into_fd(self) -> Result<OwnedFd, IntoStdError<Self>> {
        crate::unregister_shared(self.source).map_err(|(e, source)| {
            let stream = Stream {
                source,
                family: PhantomData,
            };
            IntoStdError::new(e, stream)
        })
    }

    /// Reads into `buf` (from its start, up to its capacity); `Ok(0)` means the peer closed.
    pub fn read<B: IoBufMut>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        ops::recv(&*self.source, buf)
    }

    /// Reads into each buffer in turn with one syscall (or SQE).
    pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        ops::readv(&*self.source, bufs).await
    }

    /// Writes some of `buf`'s initialised bytes; returns how many.
    pub fn write<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        ops::send(&*self.source, buf)
    }

    /// Writes all of `buf`'s initialised bytes.
    pub fn write_all<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<(), B>> + '_ {
        ops::send_all(&*self.source, buf)
    }

    /// Writes the buffers' initialised bytes in order with one syscall (or SQE); returns how
    /// many bytes went out in all.
    pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        ops::writev(&*self.source, bufs).await
    }

    /// Shuts down the read, write or both directions.
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        ops::shutdown(&*self.source, how).await
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<F::Addr> {
        F::from_sock_addr(self.socket().peer_addr()?)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<F::Addr> {
        F::from_sock_addr(self.socket().local_addr()?)
    }

    /// The pending socket error (`SO_ERROR`), if any, clearing it.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket().take_error()
    }

    /// Splits into a read half and a write half that can move to different tasks. The socket
    /// closes when both are dropped.
    pub fn into_split(self) -> (OwnedReadHalf<S, F>, OwnedWriteHalf<S, F>) {
        let read = OwnedReadHalf {
            source: self.source.clone(),
            family: PhantomData,
        };
        let write = OwnedWriteHalf {
            source: self.source,
            family: PhantomData,
        };
        (read, write)
    }

    pub(crate) fn source(&self) -> &S {
        &self.source
    }

    pub(crate) fn socket(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

/// The read half of a [`Stream`]. Made by [`Stream::into_split`].
pub struct OwnedReadHalf<S: Source, F: Family> {
    source: Arc<S>,
    family: PhantomData<fn() -> F>,
}

impl<S: Source, F: Family> OwnedReadHalf<S, F> {
    /// As [`Stream::read`].
    pub fn read<B: IoBufMut>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        ops::recv(&*self.source, buf)
    }

    /// As [`Stream::readv`].
    pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        ops::readv(&*self.source, bufs).await
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<F::Addr> {
        F::from_sock_addr(SockRef::from(self).peer_addr()?)
    }
}

/// The write half of a [`Stream`]. Made by [`Stream::into_split`].
pub struct OwnedWriteHalf<S: Source, F: Family> {
    source: Arc<S>,
    family: PhantomData<fn() -> F>,
}

impl<S: Source, F: Family> OwnedWriteHalf<S, F> {
    /// As [`Stream::write`].
    pub fn write<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + '_ {
        ops::send(&*self.source, buf)
    }

    /// As [`Stream::write_all`].
    pub fn write_all<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<(), B>> + '_ {
        ops::send_all(&*self.source, buf)
    }

    /// As [`Stream::writev`].
    pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        ops::writev(&*self.source, bufs).await
    }

    /// As [`Stream::shutdown`].
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        ops::shutdown(&*self.source, how).await
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<F::Addr> {
        F::from_sock_addr(SockRef::from(self).peer_addr()?)
    }
}

macro_rules! stream_source {
    ($ty:ident: $($marker:ident),+) => {
        impl<S: Source, F: Family> crate::StreamSource for $ty<S, F> {
            type Source = S;

            fn stream_source(&self) -> &Arc<S> {
                &self.source
            }
        }
        $(impl<S: Source, F: Family> crate::$marker for $ty<S, F> {})+

        impl<S: Source, F: Family> AsFd for $ty<S, F> {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.source.as_fd()
            }
        }

        impl<S: Source, F: Family> AsRawFd for $ty<S, F> {
            fn as_raw_fd(&self) -> RawFd {
                self.source.as_raw_fd()
            }
        }
    };
}

stream_source!(Stream: ReadStream, WriteStream);
stream_source!(OwnedReadHalf: ReadStream);
stream_source!(OwnedWriteHalf: WriteStream);

impl<S: Source, F: Family> fmt::Debug for OwnedReadHalf<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedReadHalf")
            .field("fd", &self.source.as_raw_fd())
            .finish()
    }
}

impl<S: Source, F: Family> fmt::Debug for OwnedWriteHalf<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedWriteHalf")
            .field("fd", &self.source.as_raw_fd())
            .finish()
    }
}
