//! Sockets written once over the [`Source`] of any driver: TCP and Unix
//! streams and listeners, UDP and Unix datagram sockets, and name resolution off the reactor.
//!
//! Nothing here names a backend: `TcpStream<S>` works the same over io_uring and epoll, and the
//! `runtime` facade picks `S`. Creating sockets, binding and options go through `socket2`; every
//! type gives its fd out through `AsFd`, so `socket2::SockRef::from(&socket)` reaches any
//! option not wrapped here.
#![forbid(unsafe_code)]

mod datagram;
mod drain;
mod family;
mod into_std;
mod listener;
mod lookup;
mod poll_datagram;
mod poll_io;
mod serve;
mod stream;
mod tcp;
mod udp;
mod unix;

pub use datagram::Datagram;
pub use family::{Family, Inet, Unix, UnixAddr};
pub use into_std::IntoStdError;
pub use listener::{Incoming, Listener};
pub use lookup::{lookup_host, set_lookup_delay, ToSocketAddrs};
pub use poll_datagram::PollDatagram;
pub use poll_io::{PollIo, ReadStream, StreamSource, WriteStream};
pub use serve::{serve, Draining, Server, ShutdownReport};
pub use stream::{OwnedReadHalf, OwnedWriteHalf, Stream};
pub use tcp::TcpSocket;
pub use unix::{ReceivedFds, UCred};

/// A TCP connection.
pub type TcpStream<S> = Stream<S, Inet>;
/// A listening TCP socket.
pub type TcpListener<S> = Listener<S, Inet>;
/// A connected Unix stream socket.
pub type UnixStream<S> = Stream<S, Unix>;
/// A listening Unix stream socket.
pub type UnixListener<S> = Listener<S, Unix>;
/// A UDP socket.
pub type UdpSocket<S> = Datagram<S, Inet>;
/// A Unix datagram socket.
pub type UnixDatagram<S> = Datagram<S, Unix>;

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use runtime_core::Source;

/// A socket made elsewhere (`from_std`), put in the blocking mode the backend asks for; the
/// sockets this crate makes are created in it.
fn in_backend_mode<S: Source>(fd: OwnedFd) -> io::Result<OwnedFd> {
    socket2::SockRef::from(&fd).set_nonblocking(S::nonblocking()?)?;
    Ok(fd)
}

/// [`unregister`] for a socket whose handles share its source: refused while another handle
/// (a split half, a poll adapter, a write it left running) still holds it.
fn unregister_shared<S: Source>(source: Arc<S>) -> Result<OwnedFd, (io::Error, Arc<S>)> {
    let source = Arc::try_unwrap(source).map_err(|source| {
        let why = "the socket is still shared (a split half, a poll adapter, or a write it left \
                   running)";
        (io::Error::new(io::ErrorKind::InvalidInput, why), source)
    })?;
    unregister(source).map_err(|(e, source)| (e, Arc::new(source)))
}

/// Takes a socket back from its driver, in blocking mode (as `std` makes sockets).
fn unregister<S: Source>(source: S) -> Result<OwnedFd, (io::Error, S)> {
    // Nothing runs on the socket now (the caller owns the only handle), so the mode can change
    // before the driver lets go; it belongs to the open file, which the copy shares.
    if let Err(e) = socket2::SockRef::from(&source.as_fd()).set_nonblocking(false) {
        return Err((e, source));
    }
    source.into_fd().map_err(|(e, source)| {
        // Still registered: give the driver back the mode it needs.
        let restored = S::nonblocking()
            .and_then(|nb| socket2::SockRef::from(&source.as_fd()).set_nonblocking(nb));
        (restored.err().unwrap_or(e), source)
    })
}
