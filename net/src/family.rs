//! Address families: what a socket's addresses are. The socket types are written once over a
//! [`Family`]: `Stream<S, Inet>` is a TCP connection, `Stream<S, Unix>` a Unix one.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;

use socket2::SockAddr;

/// An address family of sockets.
pub trait Family: Send + Sync + 'static {
    /// The family's socket address.
    type Addr: Clone + fmt::Debug + Send + Sync + 'static;

    /// The address the kernel reported, as this family's address.
    fn from_sock_addr(addr: SockAddr) -> io::Result<Self::Addr>;

    /// The address of a sender the kernel gave no address for (Unix: an unbound socket).
    fn unnamed() -> io::Result<Self::Addr>;
}

/// IPv4 and IPv6: TCP and UDP sockets.
#[derive(Debug)]
pub enum Inet {}

impl Family for Inet {
    type Addr = SocketAddr;

    fn from_sock_addr(addr: SockAddr) -> io::Result<SocketAddr> {
        addr.as_socket().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an IP socket address (family {})", addr.family()),
            )
        })
    }

    fn unnamed() -> io::Result<SocketAddr> {
        Err(io::Error::other("the kernel reported no sender address"))
    }
}

impl Inet {
    /// Sets `IP_TTL` (an IPv4 socket) or `IPV6_UNICAST_HOPS` (IPv6).
    pub(crate) fn set_ttl(socket: &socket2::SockRef<'_>, ttl: u32) -> io::Result<()> {
        match socket.domain()? {
            socket2::Domain::IPV6 => socket.set_unicast_hops_v6(ttl),
            _ => socket.set_ttl_v4(ttl),
        }
    }

    /// `IP_TTL` (an IPv4 socket) or `IPV6_UNICAST_HOPS` (IPv6).
    pub(crate) fn ttl(socket: &socket2::SockRef<'_>) -> io::Result<u32> {
        match socket.domain()? {
            socket2::Domain::IPV6 => socket.unicast_hops_v6(),
            _ => socket.ttl_v4(),
        }
    }
}

/// Unix domain sockets.
#[derive(Debug)]
pub enum Unix {}

impl Family for Unix {
    type Addr = UnixAddr;

    fn from_sock_addr(addr: SockAddr) -> io::Result<UnixAddr> {
        if addr.is_unix() {
            Ok(UnixAddr(addr))
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a Unix socket address (family {})", addr.family()),
            ))
        }
    }

    fn unnamed() -> io::Result<UnixAddr> {
        // An empty path is the address of no name: just the family.
        SockAddr::unix("").map(UnixAddr)
    }
}

/// The address of a Unix socket: a filesystem path, a name in Linux's abstract namespace, or
/// none (an unbound socket, or one end of a pair).
#[derive(Clone)]
pub struct UnixAddr(SockAddr);

impl UnixAddr {
    /// The filesystem path, for a socket bound to one.
    pub fn as_pathname(&self) -> Option<&Path> {
        self.0.as_pathname()
    }

    /// The abstract name (without its leading NUL), for a socket bound to one.
    pub fn as_abstract_name(&self) -> Option<&[u8]> {
        self.0.as_abstract_namespace()
    }

    /// Whether the socket has no address.
    pub fn is_unnamed(&self) -> bool {
        self.0.is_unnamed()
    }

    /// The address for `path`; a path that starts with a NUL byte names the abstract namespace.
    /// A path too long for the kernel (108 bytes with its terminating NUL) is an
    /// `InvalidInput` error.
    pub fn from_path(path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        SockAddr::unix(path).map(UnixAddr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("Unix socket path {}: {e}", path.display()),
            )
        })
    }

    /// The address in the abstract namespace named `name`.
    pub fn from_abstract_name(name: impl AsRef<[u8]>) -> io::Result<Self> {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(name.as_ref());
        let path: &std::ffi::OsStr = std::os::unix::ffi::OsStrExt::from_bytes(&bytes);
        Self::from_path(path)
    }

    pub(crate) fn sock_addr(&self) -> &SockAddr {
        &self.0
    }
}

impl fmt::Debug for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = self.as_pathname() {
            write!(f, "{path:?} (pathname)")
        } else if let Some(name) = self.as_abstract_name() {
            write!(f, "{:?} (abstract)", String::from_utf8_lossy(name))
        } else {
            f.write_str("(unnamed)")
        }
    }
}
