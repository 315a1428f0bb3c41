//! Listening stream sockets (TCP, Unix), written once over a [`Family`].

use std::fmt;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use runtime_core::{ops, Source};
use socket2::SockRef;

use crate::family::Family;
use crate::stream::Stream;
use crate::IntoStdError;

/// Pending connections the kernel queues before `accept` takes them.
pub(crate) const BACKLOG: i32 = 1024;

/// A socket listening for connections: TCP ([`TcpListener`](crate::TcpListener)) or Unix
/// ([`UnixListener`](crate::UnixListener)).
pub struct Listener<S: Source, F: Family> {
    source: S,
    family: PhantomData<fn() -> F>,
}

impl<S: Source, F: Family> fmt::Debug for Listener<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("fd", &self.source.as_raw_fd())
            .finish()
    }
}

impl<S: Source, F: Family> Listener<S, F> {
    /// Registers a listening socket, in the backend's blocking mode, with the calling reactor.
    pub(crate) fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Ok(Listener {
            source: S::new(fd)?,
            family: PhantomData,
        })
    }

    /// Unregisters the socket and returns it in blocking mode; refused (with the listener given
    /// back) while the runtime holds a connection accepted for it that no caller took.
    pub(crate) fn into_fd(self) -> Result<OwnedFd, IntoStdError<Self>> {
        crate::unregister(self.source).map_err(|(e, source)| {
            IntoStdError::new(
                e,
                Listener {
                    source,
                    family: PhantomData,
                },
            )
        })
    }

    /// Stops listening: connections not yet accepted are reset, and new ones refused, from
    /// when this returns (the socket itself closes when the listener is dropped, which on
    /// io_uring happens in the background).
    pub(crate) async fn stop_listening(&self) -> io::Result<()> {
        ops::shutdown(&self.source, std::net::Shutdown::Both).await
    }

    /// Waits for a connection. Awaited on any thread (a pool thread, another reactor), the
    /// connection is registered with the listener's reactor, as it is when awaited there.
    pub async fn accept(&self) -> io::Result<(Stream<S, F>, F::Addr)> {
        let (fd, addr) = ops::accept(&self.source).await?;
        let stream = Stream::from_source(self.source.adopt(fd)?);
        Ok((stream, F::from_sock_addr(addr)?))
    }

    /// The address the listener is bound to (with the port the kernel chose for port 0).
    pub fn local_addr(&self) -> io::Result<F::Addr> {
        F::from_sock_addr(SockRef::from(self).local_addr()?)
    }

    /// The connections as a [`Stream`](futures_core::Stream); it never ends, and yields an
    /// error for each failed accept.
    pub fn incoming(&self) -> Incoming<'_, S, F> {
        Incoming {
            listener: self,
            accept: None,
        }
    }
}

type AcceptFuture<'a, S, F> =
    Pin<Box<dyn Future<Output = io::Result<(Stream<S, F>, <F as Family>::Addr)>> + 'a>>;

/// The stream of a listener's connections. Made by [`Listener::incoming`].
pub struct Incoming<'a, S: Source, F: Family> {
    listener: &'a Listener<S, F>,
    accept: Option<AcceptFuture<'a, S, F>>,
}

impl<S: Source, F: Family> futures_core::Stream for Incoming<'_, S, F> {
    type Item = io::Result<Stream<S, F>>;

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

impl<S: Source, F: Family> AsFd for Listener<S, F> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.source.as_fd()
    }
}

impl<S: Source, F: Family> AsRawFd for Listener<S, F> {
    fn as_raw_fd(&self) -> RawFd {
        self.source.as_raw_fd()
    }
}

impl<S: Source, F: Family> std::fmt::Debug for Incoming<'_, S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}
