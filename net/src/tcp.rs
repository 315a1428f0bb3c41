//! TCP: [`TcpSocket`] (a socket configured before it listens or connects), and what only TCP
//! streams and listeners have (connecting by name, the TCP options, `std` conversions).

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use runtime_core::Source;
use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};

use crate::family::{Family, Inet};
use crate::listener::{Listener, BACKLOG};
use crate::lookup::{each_addr, ToSocketAddrs};
use crate::stream::Stream;
use crate::IntoStdError;

/// A TCP socket not yet listening or connected: set its options, bind it, then
/// [`listen`](TcpSocket::listen) or [`connect`](TcpSocket::connect). Must be made on a reactor
/// thread for `listen` and `connect` to register it there.
pub struct TcpSocket<S: Source> {
    socket: Socket,
    source: PhantomData<fn() -> S>,
}

impl<S: Source> fmt::Debug for TcpSocket<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpSocket")
            .field("fd", &self.socket.as_raw_fd())
            .finish()
    }
}

/// A socket of `domain`, close-on-exec, in the blocking mode the backend `S` needs.
pub(crate) fn new_socket<S: Source>(
    domain: Domain,
    ty: Type,
    protocol: Option<Protocol>,
) -> io::Result<Socket> {
    let ty = if S::nonblocking()? {
        ty.nonblocking()
    } else {
        ty
    };
    Socket::new(domain, ty, protocol)
}

impl<S: Source> TcpSocket<S> {
    /// An IPv4 TCP socket.
    pub fn new_v4() -> io::Result<Self> {
        Self::with_domain(Domain::IPV4)
    }

    /// An IPv6 TCP socket.
    pub fn new_v6() -> io::Result<Self> {
        Self::with_domain(Domain::IPV6)
    }

    /// A TCP socket of `addr`'s family.
    pub fn new_for(addr: SocketAddr) -> io::Result<Self> {
        Self::with_domain(Domain::for_address(addr))
    }

    fn with_domain(domain: Domain) -> io::Result<Self> {
        Ok(TcpSocket {
            socket: new_socket::<S>(domain, Type::STREAM, Some(Protocol::TCP))?,
            source: PhantomData,
        })
    }

    /// Sets `SO_REUSEADDR`: bind to a port whose old connections are still in `TIME_WAIT`.
    pub fn set_reuseaddr(&self, on: bool) -> io::Result<()> {
        self.socket.set_reuse_address(on)
    }

    /// Whether `SO_REUSEADDR` is set.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        self.socket.reuse_address()
    }

    /// Sets `SO_REUSEPORT`: several sockets may bind the same address, and the kernel spreads
    /// connections among the listening ones.
    pub fn set_reuseport(&self, on: bool) -> io::Result<()> {
        self.socket.set_reuse_port(on)
    }

    /// Whether `SO_REUSEPORT` is set.
    pub fn reuseport(&self) -> io::Result<bool> {
        self.socket.reuse_port()
    }

    /// Binds the socket to a network interface (`SO_BINDTODEVICE`; `None` unbinds). Needs
    /// `CAP_NET_RAW` on most kernels.
    pub fn bind_device(&self, interface: Option<&[u8]>) -> io::Result<()> {
        self.socket.bind_device(interface)
    }

    /// The interface the socket is bound to, if any.
    pub fn device(&self) -> io::Result<Option<Vec<u8>>> {
        self.socket.device()
    }

    /// Sets `SO_SNDBUF` (the kernel doubles it, and caps it at `net.core.wmem_max`).
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.socket.set_send_buffer_size(size)
    }

    /// `SO_SNDBUF` as the kernel holds it.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        self.socket.send_buffer_size()
    }

    /// Sets `SO_RCVBUF` (the kernel doubles it, and caps it at `net.core.rmem_max`).
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.socket.set_recv_buffer_size(size)
    }

    /// `SO_RCVBUF` as the kernel holds it.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.socket.recv_buffer_size()
    }

    /// Sets `SO_KEEPALIVE`.
    pub fn set_keepalive(&self, on: bool) -> io::Result<()> {
        self.socket.set_keepalive(on)
    }

    /// Whether `SO_KEEPALIVE` is set.
    pub fn keepalive(&self) -> io::Result<bool> {
        self.socket.keepalive()
    }

    /// Turns keepalive on with these timings: idle time before the first probe
    /// (`TCP_KEEPIDLE`), time between probes (`TCP_KEEPINTVL`), probes before the connection
    /// is dropped (`TCP_KEEPCNT`). `None` leaves that one as it is.
    pub fn set_keepalive_params(
        &self,
        time: Option<Duration>,
        interval: Option<Duration>,
        retries: Option<u32>,
    ) -> io::Result<()> {
        set_keepalive_params(&self.socket, time, interval, retries)
    }

    /// `TCP_KEEPIDLE`, `TCP_KEEPINTVL` and `TCP_KEEPCNT`.
    pub fn keepalive_params(&self) -> io::Result<(Duration, Duration, u32)> {
        Ok((
            self.socket.tcp_keepalive_time()?,
            self.socket.tcp_keepalive_interval()?,
            self.socket.tcp_keepalive_retries()?,
        ))
    }

    /// Sets `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged before the
    /// connection is dropped (`None`: the system's default).
    pub fn set_user_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket.set_tcp_user_timeout(timeout)
    }

    /// `TCP_USER_TIMEOUT` (`None`: the system's default).
    pub fn user_timeout(&self) -> io::Result<Option<Duration>> {
        self.socket.tcp_user_timeout()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.socket.set_tcp_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.socket.tcp_nodelay()
    }

    /// Sets `SO_LINGER`: see [`Stream::set_linger`].
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.socket.set_linger(linger)
    }

    /// `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        self.socket.linger()
    }

    /// Sets `IPV6_V6ONLY` on an IPv6 socket: whether it refuses IPv4-mapped peers.
    pub fn set_only_v6(&self, on: bool) -> io::Result<()> {
        self.socket.set_only_v6(on)
    }

    /// Whether `IPV6_V6ONLY` is set.
    pub fn only_v6(&self) -> io::Result<bool> {
        self.socket.only_v6()
    }

    /// Binds to `addr`.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.socket
            .bind(&addr.into())
            .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Inet::from_sock_addr(self.socket.local_addr()?)
    }

    /// Listens, with room for `backlog` connections not yet accepted; registers with the
    /// calling reactor.
    pub fn listen(self, backlog: u32) -> io::Result<Listener<S, Inet>> {
        self.socket.listen(backlog.min(i32::MAX as u32) as i32)?;
        Listener::from_fd(self.socket.into())
    }

    /// Connects to `addr`; registers with the calling reactor.
    pub async fn connect(self, addr: SocketAddr) -> io::Result<Stream<S, Inet>> {
        Stream::connect_socket(self.socket, SockAddr::from(addr))
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("connect {addr}: {e}")))
    }
}

impl<S: Source> AsFd for TcpSocket<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl<S: Source> AsRawFd for TcpSocket<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

fn set_keepalive_params(
    socket: &Socket,
    time: Option<Duration>,
    interval: Option<Duration>,
    retries: Option<u32>,
) -> io::Result<()> {
    let mut params = TcpKeepalive::new();
    if let Some(time) = time {
        params = params.with_time(time);
    }
    if let Some(interval) = interval {
        params = params.with_interval(interval);
    }
    if let Some(retries) = retries {
        params = params.with_retries(retries);
    }
    socket.set_tcp_keepalive(&params)
}

/// A numeric address, or a clear refusal of a name (a lookup would block the reactor).
fn numeric(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    match addr.to_target() {
        crate::lookup::Target::One(addr) => Ok(vec![addr]),
        crate::lookup::Target::Ready(addrs) if !addrs.is_empty() => Ok(addrs),
        crate::lookup::Target::Ready(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to bind",
        )),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bind takes a numeric address (looking a name up would block the reactor): resolve \
             it with lookup_host first",
        )),
    }
}

impl<S: Source> Listener<S, Inet> {
    /// Binds to the first of the addresses that works (with `SO_REUSEADDR`) and listens. The
    /// address must be numeric: resolve a name with [`lookup_host`](crate::lookup_host).
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Self::bind_with(&addr, false)
    }

    /// As [`bind`](Listener::bind), with `SO_REUSEPORT`: several listeners (one per reactor)
    /// can bind the same address, and the kernel spreads connections among them.
    pub fn bind_reuseport(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Self::bind_with(&addr, true)
    }

    fn bind_with(addr: &(impl ToSocketAddrs + ?Sized), reuseport: bool) -> io::Result<Self> {
        let mut last = None;
        for addr in numeric(addr)? {
            let bound = TcpSocket::<S>::new_for(addr).and_then(|socket| {
                socket.set_reuseaddr(true)?;
                if reuseport {
                    socket.set_reuseport(true)?;
                }
                socket.bind(addr)?;
                socket.listen(BACKLOG as u32)
            });
            match bound {
                Ok(listener) => return Ok(listener),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("numeric gives at least one address"))
    }

    /// Takes a listener bound elsewhere (by `std`, systemd's socket activation, another
    /// library) and registers it with the calling reactor.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<Self> {
        Self::from_fd(crate::in_backend_mode::<S>(listener.into())?)
    }

    /// Unregisters the listener and hands it back to `std`, in blocking mode.
    pub fn into_std(self) -> Result<std::net::TcpListener, IntoStdError<Self>> {
        self.into_fd().map(Into::into)
    }
}

impl<S: Source> Stream<S, Inet> {
    /// Connects to the first address of `addr` that accepts; a host name is looked up on the
    /// pool. A refused connection is an `io::Error` of kind `ConnectionRefused` naming the
    /// address.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<Self> {
        each_addr(&addr, |addr| async move {
            let socket = TcpSocket::<S>::new_for(addr)?.socket;
            Stream::connect_socket(socket, SockAddr::from(addr)).await
        })
        .await
    }

    /// Takes a connected stream made elsewhere and registers it with the calling reactor.
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<Self> {
        Self::from_fd(crate::in_backend_mode::<S>(stream.into())?)
    }

    /// Unregisters the stream and hands it to `std`, in blocking mode. Refused while the
    /// runtime holds bytes received for it that no read took; on io_uring that is any stream
    /// read since its multishot receive was armed (convert before the first read).
    pub fn into_std(self) -> Result<std::net::TcpStream, IntoStdError<Self>> {
        self.into_fd().map(Into::into)
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket().set_tcp_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.socket().tcp_nodelay()
    }

    /// Sets `SO_LINGER`: with `Some(Duration::ZERO)`, closing the socket resets the connection
    /// (RST) instead of shutting it down gracefully; with `None`, the default close.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.socket().set_linger(linger)
    }

    /// `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        self.socket().linger()
    }

    /// Sets `IP_TTL` (IPv4) or `IPV6_UNICAST_HOPS` (IPv6).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        Inet::set_ttl(&self.socket(), ttl)
    }

    /// `IP_TTL` (IPv4) or `IPV6_UNICAST_HOPS` (IPv6).
    pub fn ttl(&self) -> io::Result<u32> {
        Inet::ttl(&self.socket())
    }

    /// Turns keepalive on with these timings; see [`TcpSocket::set_keepalive_params`].
    pub fn set_keepalive_params(
        &self,
        time: Option<Duration>,
        interval: Option<Duration>,
        retries: Option<u32>,
    ) -> io::Result<()> {
        set_keepalive_params(&self.socket(), time, interval, retries)
    }
}
