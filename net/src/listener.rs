//! `TcpListener`.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll};

use runtime_core::{ops, sys, Source};

use crate::stream::TcpStream;

/// Pending connections the kernel queues before `accept` takes them.
const BACKLOG: libc::c_int = 1024;

/// A TCP socket listening for connections.
#[derive(Debug)]
pub struct TcpListener<S: Source> {
    source: S,
}

impl<S: Source> TcpListener<S> {
    /// Binds to the first address of `addr` that works (with `SO_REUSEADDR`) and listens.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Self::bind_with(addr, false)
    }

    /// As [`bind`](TcpListener::bind), with `SO_REUSEPORT`: several listeners (one per reactor)
    /// can bind the same address, and the kernel spreads connections among them.
    pub fn bind_reuseport(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Self::bind_with(addr, true)
    }

    fn bind_with(addr: impl ToSocketAddrs, reuseport: bool) -> io::Result<Self> {
        let mut last = None;
        for addr in addr.to_socket_addrs()? {
            match Self::bind_one(&addr, reuseport) {
                Ok(l) => return Ok(l),
                Err(e) => last = Some(io::Error::new(e.kind(), format!("bind {addr}: {e}"))),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing")
        }))
    }

    /// Stops listening: connections not yet accepted are reset, and new ones refused, from
    /// when this returns (the socket itself closes when the listener is dropped, which on
    /// io_uring happens in the background).
    pub(crate) async fn stop_listening(&self) -> io::Result<()> {
        ops::shutdown(&self.source, std::net::Shutdown::Both).await
    }

    fn bind_one(addr: &SocketAddr, reuseport: bool) -> io::Result<Self> {
        let fd = sys::socket(addr, libc::SOCK_STREAM, S::nonblocking()?)?;
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        sys::setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        if reuseport {
            sys::setsockopt_int(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
        }
        sys::bind(raw, addr)?;
        sys::listen(raw, BACKLOG)?;
        Ok(TcpListener {
            source: S::new(fd)?,
        })
    }

    /// Waits for a connection. Awaited on any thread (a pool thread, another reactor), the
    /// connection is registered with the listener's reactor, as it is when awaited there.
    pub async fn accept(&self) -> io::Result<(TcpStream<S>, SocketAddr)> {
        let (fd, addr) = ops::accept(&self.source).await?;
        Ok((TcpStream::from_source(self.source.adopt(fd)?), addr))
    }

    /// The address the listener is bound to (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        sys::local_addr(self.source.as_raw_fd())
    }

    /// The connections as a [`Stream`](futures_core::Stream); it never ends, and yields an
    /// error for each failed accept.
    pub fn incoming(&self) -> Incoming<'_, S> {
        Incoming {
            listener: self,
            accept: None,
        }
    }
}

type AcceptFuture<'a, S> =
    Pin<Box<dyn Future<Output = io::Result<(TcpStream<S>, SocketAddr)>> + 'a>>;

/// The stream of a listener's connections. Made by [`TcpListener::incoming`].
pub struct Incoming<'a, S: Source> {
    listener: &'a TcpListener<S>,
    accept: Option<AcceptFuture<'a, S>>,
}

impl<S: Source> futures_core::Stream for Incoming<'_, S> {
    type Item = io::Result<TcpStream<S>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let listener = self.listener;
        let accept = self
            .accept
            .get_or_insert_with(|| Box::pin(listener.accept()));
        let res = std::task::ready!(accept.as_mut().poll(cx));
        self.accept = None;
        Poll::Ready(Some(res.map(|(stream, _)| stream)))
    }
}

impl<S: Source> std::fmt::Debug for Incoming<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}
