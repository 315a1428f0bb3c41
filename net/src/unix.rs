//! What only Unix sockets have: filesystem and abstract addresses, socket pairs, the peer's
//! credentials, and passing file descriptors (`SCM_RIGHTS`).

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use runtime_core::{ops, BufResult, IoBuf, IoBufMut, Source};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::datagram::Datagram;
use crate::family::{Unix, UnixAddr};
use crate::listener::{Listener, BACKLOG};
use crate::stream::Stream;
use crate::tcp::new_socket;
use crate::IntoStdError;

/// The credentials of the process at the other end of a Unix socket, as they were when it
/// connected (or when the pair was made).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UCred {
    /// Its process id.
    pub pid: i32,
    /// Its effective user id.
    pub uid: u32,
    /// Its effective group id.
    pub gid: u32,
}

fn peer_cred(fd: BorrowedFd<'_>) -> io::Result<UCred> {
    let cred = runtime_core::sys::peer_cred(fd)?;
    Ok(UCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

fn unix_socket<S: Source>(ty: Type) -> io::Result<Socket> {
    new_socket::<S>(Domain::UNIX, ty, None)
}

/// Two connected sockets of type `ty`, in the mode the backend needs.
fn pair<S: Source>(ty: Type) -> io::Result<(OwnedFd, OwnedFd)> {
    let ty = if S::nonblocking()? {
        ty.nonblocking()
    } else {
        ty
    };
    let (a, b) = Socket::pair(Domain::UNIX, ty, None)?;
    Ok((a.into(), b.into()))
}

/// What [`Stream::recv_with_fds`] and [`Datagram::recv_with_fds`] received.
#[derive(Debug)]
pub struct ReceivedFds {
    /// Bytes received.
    pub len: usize,
    /// The descriptors that came with them (close-on-exec).
    pub fds: Vec<OwnedFd>,
}

/// Checks a message receive that may carry fds: more fds than room, or a datagram longer than
/// the buffer, is an error (the kernel closed the extra fds, or dropped the datagram's rest).
fn received_fds(got: ops::Received, room: usize) -> io::Result<ReceivedFds> {
    if got.fds_truncated {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the peer sent more file descriptors than there was room for ({} taken; the \
                 kernel closed the rest)",
                got.fds.len()
            ),
        ));
    }
    if got.truncated {
        return Err(crate::datagram::truncated(got.len, room));
    }
    Ok(ReceivedFds {
        len: got.len,
        fds: got.fds,
    })
}

impl<S: Source> Listener<S, Unix> {
    /// Binds to `path` and listens. A path that starts with a NUL byte names Linux's abstract
    /// namespace; a path too long is an `InvalidInput` error. A socket file left at `path` by an
    /// earlier run is not removed: `AddrInUse`.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::bind_addr(&UnixAddr::from_path(path)?)
    }

    /// Binds to `addr` (a path or an abstract name) and listens.
    pub fn bind_addr(addr: &UnixAddr) -> io::Result<Self> {
        let socket = unix_socket::<S>(Type::STREAM)?;
        socket
            .bind(addr.sock_addr())
            .map_err(|e| io::Error::new(e.kind(), format!("bind {addr:?}: {e}")))?;
        socket.listen(BACKLOG)?;
        Self::from_fd(socket.into())
    }

    /// Takes a listener bound elsewhere and registers it with the calling reactor.
    pub fn from_std(listener: std::os::unix::net::UnixListener) -> io::Result<Self> {
        Self::from_fd(crate::in_backend_mode::<S>(listener.into())?)
    }

    /// Unregisters the listener and hands it to `std`, in blocking mode.
    pub fn into_std(self) -> Result<std::os::unix::net::UnixListener, IntoStdError<Self>> {
        self.into_fd().map(Into::into)
    }
}

impl<S: Source> Stream<S, Unix> {
    /// Connects to the socket at `path` (a leading NUL byte: an abstract name).
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<Self> {
        Self::connect_addr(&UnixAddr::from_path(path)?).await
    }

    /// Connects to `addr`.
    pub async fn connect_addr(addr: &UnixAddr) -> io::Result<Self> {
        Stream::connect_socket(unix_socket::<S>(Type::STREAM)?, addr.sock_addr().clone())
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("connect {addr:?}: {e}")))
    }

    /// Two connected streams, registered with the calling reactor.
    pub fn pair() -> io::Result<(Self, Self)> {
        let (a, b) = pair::<S>(Type::STREAM)?;
        Ok((Self::from_fd(a)?, Self::from_fd(b)?))
    }

    /// The credentials of the peer process.
    pub fn peer_cred(&self) -> io::Result<UCred> {
        peer_cred(self.source().as_fd())
    }

    /// Sends `buf`'s initialised bytes with `fds` attached (`SCM_RIGHTS`): the peer receives
    /// its own copies of them with the first of these bytes it reads.
    pub async fn send_with_fds<B: IoBuf>(
        &self,
        buf: B,
        fds: &[BorrowedFd<'_>],
    ) -> BufResult<usize, B> {
        ops::send_msg(self.source(), buf, None, fds).await
    }

    /// Receives bytes and any fds sent with them, with room for `max_fds`. On io_uring a
    /// stream that carries fds must be read with this call only: after a plain read, its
    /// multishot receive takes the bytes (and drops the fds), so this call is then refused
    /// with `InvalidInput` rather than reordering bytes.
    pub async fn recv_with_fds<B: IoBufMut>(
        &self,
        buf: B,
        max_fds: usize,
    ) -> BufResult<ReceivedFds, B> {
        let options = ops::RecvOptions {
            max_fds,
            ..ops::RecvOptions::default()
        };
        let BufResult(res, buf) = ops::recv_msg(self.source(), buf, options).await;
        let room = buf.bytes_total();
        BufResult(res.and_then(|got| received_fds(got, room)), buf)
    }

    /// Takes a connected stream made elsewhere and registers it with the calling reactor.
    pub fn from_std(stream: std::os::unix::net::UnixStream) -> io::Result<Self> {
        Self::from_fd(crate::in_backend_mode::<S>(stream.into())?)
    }

    /// Unregisters the stream and hands it to `std`, in blocking mode; refused as
    /// [`TcpStream::into_std`](crate::TcpStream) is.
    pub fn into_std(self) -> Result<std::os::unix::net::UnixStream, IntoStdError<Self>> {
        self.into_fd().map(Into::into)
    }
}

impl<S: Source> Datagram<S, Unix> {
    /// A Unix datagram socket bound to `path` (a leading NUL byte: an abstract name).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Self> {
        let addr = UnixAddr::from_path(path)?;
        let socket = unix_socket::<S>(Type::DGRAM)?;
        socket
            .bind(addr.sock_addr())
            .map_err(|e| io::Error::new(e.kind(), format!("bind {addr:?}: {e}")))?;
        Self::from_fd(socket.into())
    }

    /// A Unix datagram socket bound to no address: it can send, and receive replies only
    /// once connected.
    pub fn unbound() -> io::Result<Self> {
        Self::from_fd(unix_socket::<S>(Type::DGRAM)?.into())
    }

    /// Two connected datagram sockets, registered with the calling reactor.
    pub fn pair() -> io::Result<(Self, Self)> {
        let (a, b) = pair::<S>(Type::DGRAM)?;
        Ok((Self::from_fd(a)?, Self::from_fd(b)?))
    }

    /// Connects to the socket at `path`: the peer of [`send`](Datagram::send).
    pub async fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        self.connect_sock(UnixAddr::from_path(path)?.sock_addr())
            .await
    }

    /// Sends `buf`'s initialised bytes as one datagram to the socket at `path`.
    pub async fn send_to<B: IoBuf>(&self, buf: B, path: impl AsRef<Path>) -> BufResult<usize, B> {
        match UnixAddr::from_path(path) {
            Ok(addr) => self.send_to_sock(buf, addr.sock_addr()).await,
            Err(e) => BufResult(Err(e), buf),
        }
    }

    /// Sends one datagram with `fds` attached (`SCM_RIGHTS`), to the connected peer or to
    /// `to`.
    pub async fn send_with_fds<B: IoBuf>(
        &self,
        buf: B,
        fds: &[BorrowedFd<'_>],
        to: Option<&UnixAddr>,
    ) -> BufResult<usize, B> {
        let to: Option<&SockAddr> = to.map(UnixAddr::sock_addr);
        self.send_with_fds_to(buf, to, fds).await
    }

    /// Receives one datagram and any fds sent with it, with room for `max_fds`.
    pub async fn recv_with_fds<B: IoBufMut>(
        &self,
        buf: B,
        max_fds: usize,
    ) -> BufResult<ReceivedFds, B> {
        let BufResult(res, buf) = self.recv_with_fds_from(buf, max_fds).await;
        let room = buf.bytes_total();
        BufResult(res.and_then(|got| received_fds(got, room)), buf)
    }

    /// The credentials of the connected peer process.
    pub fn peer_cred(&self) -> io::Result<UCred> {
        peer_cred(std::os::fd::AsFd::as_fd(self))
    }

    /// Takes a Unix datagram socket made elsewhere and registers it with the calling reactor.
    pub fn from_std(socket: std::os::unix::net::UnixDatagram) -> io::Result<Self> {
        Self::from_fd(crate::in_backend_mode::<S>(socket.into())?)
    }

    /// Unregisters the socket and hands it to `std`, in blocking mode.
    pub fn into_std(self) -> Result<std::os::unix::net::UnixDatagram, IntoStdError<Self>> {
        self.into_fd().map(Into::into)
    }
}
