//! `TcpStream` and its owned halves.

use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use runtime_core::{ops, sys, BufResult, IoBuf, IoBufMut, Source};

use crate::each_addr;

/// A TCP connection. Operations take `&self`, so one task may read while another writes; for
/// halves that move to different tasks, see [`into_split`](TcpStream::into_split).
#[derive(Debug)]
pub struct TcpStream<S: Source> {
    source: Arc<S>,
}

impl<S: Source> TcpStream<S> {
    pub(crate) fn from_source(source: S) -> Self {
        TcpStream {
            source: Arc::new(source),
        }
    }

    /// Connects to the first address of `addr` that accepts. A refused connection is an
    /// `io::Error` of kind `ConnectionRefused` naming the address.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<Self> {
        each_addr(addr, |addr| async move {
            let fd = sys::socket(&addr, libc::SOCK_STREAM, S::nonblocking()?)?;
            let source = S::new(fd)?;
            ops::connect(&source, addr).await?;
            Ok(TcpStream::from_source(source))
        })
        .await
    }

    /// Reads into `buf` (from its start, up to its capacity); `Ok(0)` means the peer closed.
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        ops::recv(&*self.source, buf).await
    }

    /// Reads into each buffer in turn with one syscall (or SQE).
    pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        ops::readv(&*self.source, bufs).await
    }

    /// Writes some of `buf`'s initialised bytes; returns how many.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        ops::send(&*self.source, buf).await
    }

    /// Writes all of `buf`'s initialised bytes.
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        ops::send_all(&*self.source, buf).await
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
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sys::peer_addr(self.source.as_raw_fd())
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::local_addr(self.source.as_raw_fd())
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        sys::setsockopt_int(
            self.source.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            nodelay.into(),
        )
    }

    /// Sets `SO_LINGER`: with `Some(Duration::ZERO)`, closing the socket resets the connection
    /// (RST) instead of shutting it down gracefully; with `None`, the default close.
    pub fn set_linger(&self, linger: Option<std::time::Duration>) -> io::Result<()> {
        sys::set_linger(self.source.as_raw_fd(), linger)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(sys::getsockopt_int(
            self.source.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
        )? != 0)
    }

    /// Splits into a read half and a write half that can move to different tasks. The socket
    /// closes when both are dropped.
    pub fn into_split(self) -> (OwnedReadHalf<S>, OwnedWriteHalf<S>) {
        (
            OwnedReadHalf {
                source: self.source.clone(),
            },
            OwnedWriteHalf {
                source: self.source,
            },
        )
    }
}

/// The read half of a [`TcpStream`]. Made by [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf<S: Source> {
    source: Arc<S>,
}

impl<S: Source> OwnedReadHalf<S> {
    /// As [`TcpStream::read`].
    pub async fn read<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        ops::recv(&*self.source, buf).await
    }

    /// As [`TcpStream::readv`].
    pub async fn readv<B: IoBufMut>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        ops::readv(&*self.source, bufs).await
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        sys::peer_addr(self.source.as_raw_fd())
    }
}

/// The write half of a [`TcpStream`]. Made by [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedWriteHalf<S: Source> {
    source: Arc<S>,
}

impl<S: Source> OwnedWriteHalf<S> {
    /// As [`TcpStream::write`].
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        ops::send(&*self.source, buf).await
    }

    /// As [`TcpStream::write_all`].
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        ops::send_all(&*self.source, buf).await
    }

    /// As [`TcpStream::writev`].
    pub async fn writev<B: IoBuf>(&self, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
        ops::writev(&*self.source, bufs).await
    }

    /// As [`TcpStream::shutdown`].
    pub async fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        ops::shutdown(&*self.source, how).await
    }
}

impl<S: Source> std::os::fd::AsRawFd for TcpStream<S> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.source.as_raw_fd()
    }
}

macro_rules! stream_source {
    ($ty:ident: $($marker:ident),+) => {
        impl<S: Source> crate::StreamSource for $ty<S> {
            type Source = S;

            fn stream_source(&self) -> &Arc<S> {
                &self.source
            }
        }
        $(impl<S: Source> crate::$marker for $ty<S> {})+
    };
}

stream_source!(TcpStream: ReadStream, WriteStream);
stream_source!(OwnedReadHalf: ReadStream);
stream_source!(OwnedWriteHalf: WriteStream);
