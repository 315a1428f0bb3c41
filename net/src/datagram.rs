//! Datagram sockets (UDP, Unix), written once over a [`Family`]. Each receive is one message
//! operation, so a datagram's bytes, its sender and its fds always arrive together.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use runtime_core::ops::{self, RecvOptions};
use runtime_core::{BufResult, IoBuf, IoBufMut, Source};
use socket2::{SockAddr, SockRef};

use crate::family::Family;
use crate::IntoStdError;

/// A datagram socket: UDP ([`UdpSocket`](crate::UdpSocket)) or Unix
/// ([`UnixDatagram`](crate::UnixDatagram)). `Send` and `Sync`: it may be used from any thread,
/// and operations take `&self`, so one task may receive while others send.
pub struct Datagram<S: Source, F: Family> {
    source: Arc<S>,
    family: PhantomData<fn() -> F>,
}

impl<S: Source, F: Family> fmt::Debug for Datagram<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Datagram")
            .field("fd", &self.source.as_raw_fd())
            .finish()
    }
}

/// The error of a datagram longer than the buffer it was received into.
/// How a datagram socket receives: every result a datagram's whole length.
const RECV: RecvOptions = RecvOptions {
    peek: false,
    max_fds: 0,
    datagram: true,
};

pub(crate) fn truncated(len: usize, room: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "a datagram of {len} bytes did not fit the buffer's {room}: its first {room} bytes \
             are in the buffer, the rest is lost"
        ),
    )
}

impl<S: Source, F: Family> Datagram<S, F> {
    /// Registers a socket, in the backend's blocking mode, with the calling reactor.
    pub(crate) fn from_fd(fd: OwnedFd) -> io::Result<Self> {
        Ok(Datagram {
            source: Arc::new(S::new(fd)?),
            family: PhantomData,
        })
    }

    pub(crate) fn into_fd(self) -> Result<OwnedFd, IntoStdError<Self>> {
        crate::unregister_shared(self.source).map_err(|(e, source)| {
            let socket = Datagram {
                source,
                family: PhantomData,
            };
            IntoStdError::new(e, socket)
        })
    }

    /// Sends `buf`'s initialised bytes as one datagram to the connected peer.
    pub async fn send<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        ops::send_msg(&*self.source, buf, None, &[]).await
    }

    pub(crate) async fn send_to_sock<B: IoBuf>(
        &self,
        buf: B,
        to: &SockAddr,
    ) -> BufResult<usize, B> {
        ops::send_msg(&*self.source, buf, Some(to), &[]).await
    }

    pub(crate) async fn send_with_fds_to<B: IoBuf>(
        &self,
        buf: B,
        to: Option<&SockAddr>,
        fds: &[BorrowedFd<'_>],
    ) -> BufResult<usize, B> {
        ops::send_msg(&*self.source, buf, to, fds).await
    }

    /// Receives one datagram into `buf` (from its start, up to its capacity); returns its
    /// length and sender. A datagram longer than the buffer is an `InvalidData` error (the
    /// buffer holds its start).
    pub async fn recv_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, F::Addr), B> {
        let BufResult(res, buf) = ops::recv_msg(&*self.source, buf, RECV).await;
        let room = buf.bytes_total();
        let res = res.and_then(|got| {
            if got.truncated {
                return Err(truncated(got.len, room));
            }
            Ok((got.len, sender::<F>(got.addr)?))
        });
        BufResult(res, buf)
    }

    /// Receives one datagram from the connected peer; as [`recv_from`](Datagram::recv_from)
    /// without the sender.
    pub async fn recv<B: IoBufMut>(&self, buf: B) -> BufResult<usize, B> {
        let BufResult(res, buf) = ops::recv_msg(&*self.source, buf, RECV).await;
        let room = buf.bytes_total();
        let res = res.and_then(|got| match got.truncated {
            true => Err(truncated(got.len, room)),
            false => Ok(got.len),
        });
        BufResult(res, buf)
    }

    /// Copies the next datagram into `buf` (as much as fits) and returns the bytes copied and
    /// its sender, leaving it queued: the next receive gets it again.
    pub async fn peek_from<B: IoBufMut>(&self, buf: B) -> BufResult<(usize, F::Addr), B> {
        let options = RecvOptions { peek: true, ..RECV };
        let BufResult(res, buf) = ops::recv_msg(&*self.source, buf, options).await;
        let room = buf.bytes_total();
        let res = res.and_then(|got| Ok((got.len.min(room), sender::<F>(got.addr)?)));
        BufResult(res, buf)
    }

    pub(crate) async fn recv_with_fds_from<B: IoBufMut>(
        &self,
        buf: B,
        max_fds: usize,
    ) -> BufResult<ops::Received, B> {
        let options = RecvOptions { max_fds, ..RECV };
        ops::recv_msg(&*self.source, buf, options).await
    }

    pub(crate) async fn connect_sock(&self, addr: &SockAddr) -> io::Result<()> {
        ops::connect(&*self.source, addr.clone()).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<F::Addr> {
        F::from_sock_addr(self.socket().local_addr()?)
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<F::Addr> {
        F::from_sock_addr(self.socket().peer_addr()?)
    }

    /// The pending socket error (`SO_ERROR`), if any, clearing it: for UDP, an ICMP error
    /// (port unreachable) from an earlier send.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket().take_error()
    }

    pub(crate) fn source(&self) -> &S {
        &self.source
    }

    pub(crate) fn socket(&self) -> SockRef<'_> {
        SockRef::from(self)
    }
}

/// The sender's address (a Unix sender without a name has none).
pub(crate) fn sender<F: Family>(addr: Option<SockAddr>) -> io::Result<F::Addr> {
    match addr {
        Some(addr) if addr.len() > 0 => F::from_sock_addr(addr),
        _ => F::unnamed(),
    }
}

impl<S: Source, F: Family> AsFd for Datagram<S, F> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.source.as_fd()
    }
}

impl<S: Source, F: Family> AsRawFd for Datagram<S, F> {
    fn as_raw_fd(&self) -> RawFd {
        self.source.as_raw_fd()
    }
}
