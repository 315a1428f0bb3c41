//! What only UDP sockets have: binding and sending by name, broadcast, multicast and TTL.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};

use runtime_core::{BufResult, IoBuf, Source};
use socket2::{Domain, Protocol, SockAddr, Type};

use crate::datagram::Datagram;
use crate::family::Inet;
use crate::lookup::{each_addr, resolve_first, ToSocketAddrs};
use crate::tcp::new_socket;
use crate::IntoStdError;

impl<S: Source> Datagram<S, Inet> {
    /// Binds a UDP socket to the first address of `addr` that works; a host name is looked up
    /// on the pool. Registers with the calling reactor.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        each_addr(&addr, |addr| async move {
            let socket =
                new_socket::<S>(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
            socket.bind(&addr.into())?;
            Self::from_fd(socket.into())
        })
        .await
    }

    /// Connects to the first address of `addr` (looked up on the pool if a name): sets the
    /// peer that [`send`](Datagram::send) goes to and the only one
    /// [`recv`](Datagram::recv) hears from.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        each_addr(&addr, |addr| async move {
            self.connect_sock(&addr.into()).await
        })
        .await
    }

    /// Sends `buf`'s initialised bytes as one datagram to the first address of `target` (looked
    /// up on the pool if a name).
    pub async fn send_to<B: IoBuf>(
        &self,
        buf: B,
        target: impl ToSocketAddrs,
    ) -> BufResult<usize, B> {
        match resolve_first(&target).await {
            Ok(addr) => self.send_to_sock(buf, &SockAddr::from(addr)).await,
            Err(e) => BufResult(Err(e), buf),
        }
    }

    /// Takes a UDP socket bound elsewhere and registers it with the calling reactor.
    pub fn from_std(socket: std::net::UdpSocket) -> io::Result<Self> {
        Self::from_fd(crate::in_backend_mode::<S>(socket.into())?)
    }

    /// Unregisters the socket and hands it to `std`, in blocking mode.
    pub fn into_std(self) -> Result<std::net::UdpSocket, IntoStdError<Self>> {
        self.into_fd().map(Into::into)
    }

    /// Sets `SO_BROADCAST`: whether datagrams may go to a broadcast address.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.socket().set_broadcast(on)
    }

    /// Whether `SO_BROADCAST` is set.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.socket().broadcast()
    }

    /// Sets `IP_TTL` (IPv4) or `IPV6_UNICAST_HOPS` (IPv6).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        Inet::set_ttl(&self.socket(), ttl)
    }

    /// `IP_TTL` (IPv4) or `IPV6_UNICAST_HOPS` (IPv6).
    pub fn ttl(&self) -> io::Result<u32> {
        Inet::ttl(&self.socket())
    }

    /// Joins the IPv4 multicast group `group` on the interface with address `interface`
    /// (`UNSPECIFIED`: the kernel's choice).
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.socket().join_multicast_v4(&group, &interface)
    }

    /// Leaves an IPv4 multicast group joined with
    /// [`join_multicast_v4`](Datagram::join_multicast_v4).
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.socket().leave_multicast_v4(&group, &interface)
    }

    /// Joins the IPv6 multicast group `group` on interface index `interface` (0: any).
    pub fn join_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.socket().join_multicast_v6(&group, interface)
    }

    /// Leaves an IPv6 multicast group joined with
    /// [`join_multicast_v6`](Datagram::join_multicast_v6).
    pub fn leave_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> io::Result<()> {
        self.socket().leave_multicast_v6(&group, interface)
    }

    /// Sets `IP_MULTICAST_LOOP`: whether this host's own IPv4 multicast datagrams come back.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.socket().set_multicast_loop_v4(on)
    }

    /// Whether `IP_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.socket().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`.
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.socket().set_multicast_ttl_v4(ttl)
    }

    /// `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.socket().multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.socket().set_multicast_loop_v6(on)
    }

    /// Whether `IPV6_MULTICAST_LOOP` is set.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.socket().multicast_loop_v6()
    }
}
