//! Name resolution off the reactor: `getaddrinfo` blocks, so it runs on the pool, and a reactor
//! never waits for DNS. Addresses that are already numeric resolve at once, with no pool trip.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What an address argument resolves to.
#[doc(hidden)]
#[derive(Debug)]
pub enum Target {
    /// One numeric address (no allocation: a `send_to` per datagram makes one).
    One(SocketAddr),
    /// Numeric addresses.
    Ready(Vec<SocketAddr>),
    /// A name and port to look up.
    Lookup(String, u16),
    /// A `host:port` string to look up.
    LookupStr(String),
}

mod sealed {
    pub trait Sealed {}
}

/// Types that name socket addresses: a `SocketAddr`, `(ip, port)`, `(host, port)`,
/// `"host:port"`, or a slice of addresses. Like `std::net::ToSocketAddrs`, except that host
/// names are looked up on the pool ([`lookup_host`]), never on the calling thread.
pub trait ToSocketAddrs: sealed::Sealed {
    #[doc(hidden)]
    fn to_target(&self) -> Target;
}

macro_rules! ready {
    ($($ty:ty => |$v:ident| $e:expr;)+) => {$(
        impl sealed::Sealed for $ty {}
        impl ToSocketAddrs for $ty {
            fn to_target(&self) -> Target {
                let $v = self;
                $e
            }
        }
    )+};
}

ready! {
    SocketAddr => |a| Target::One(*a);
    SocketAddrV4 => |a| Target::One(SocketAddr::V4(*a));
    SocketAddrV6 => |a| Target::One(SocketAddr::V6(*a));
    (IpAddr, u16) => |a| Target::One(SocketAddr::new(a.0, a.1));
    (Ipv4Addr, u16) => |a| Target::One(SocketAddr::new(a.0.into(), a.1));
    (Ipv6Addr, u16) => |a| Target::One(SocketAddr::new(a.0.into(), a.1));
    [SocketAddr] => |a| Target::Ready(a.to_vec());
    Vec<SocketAddr> => |a| Target::Ready(a.clone());
}

impl sealed::Sealed for str {}
impl ToSocketAddrs for str {
    fn to_target(&self) -> Target {
        match self.parse() {
            Ok(addr) => Target::One(addr),
            Err(_) => Target::LookupStr(self.to_owned()),
        }
    }
}

impl sealed::Sealed for String {}
impl ToSocketAddrs for String {
    fn to_target(&self) -> Target {
        self.as_str().to_target()
    }
}

impl sealed::Sealed for (&str, u16) {}
impl ToSocketAddrs for (&str, u16) {
    fn to_target(&self) -> Target {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Target::One(SocketAddr::new(ip, self.1)),
            Err(_) => Target::Lookup(self.0.to_owned(), self.1),
        }
    }
}

impl sealed::Sealed for (String, u16) {}
impl ToSocketAddrs for (String, u16) {
    fn to_target(&self) -> Target {
        (self.0.as_str(), self.1).to_target()
    }
}

impl<T: ToSocketAddrs + ?Sized> sealed::Sealed for &T {}
impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_target(&self) -> Target {
        (**self).to_target()
    }
}

/// A delay added to every lookup on the pool, in microseconds (tests only).
static LOOKUP_DELAY_US: AtomicU64 = AtomicU64::new(0);

/// Makes every lookup that goes to the pool take at least `delay` longer: for tests that show
/// a slow lookup does not hold up the reactor. Not for production use.
#[doc(hidden)]
pub fn set_lookup_delay(delay: Duration) {
    LOOKUP_DELAY_US.store(delay.as_micros() as u64, Ordering::Relaxed);
}

/// Resolves `addr` to socket addresses. A host name is looked up (`getaddrinfo`) on the
/// runtime's pool, so the calling reactor keeps serving meanwhile; a numeric address resolves
/// at once. A name that resolves to nothing is an error.
pub async fn lookup_host(
    addr: impl ToSocketAddrs,
) -> io::Result<impl Iterator<Item = SocketAddr> + std::fmt::Debug> {
    resolve(&addr).await.map(Vec::into_iter)
}

pub(crate) async fn resolve(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<Vec<SocketAddr>> {
    lookup(addr.to_target()).await
}

/// The first address `addr` resolves to; a numeric one costs no allocation.
pub(crate) async fn resolve_first(addr: &(impl ToSocketAddrs + ?Sized)) -> io::Result<SocketAddr> {
    match addr.to_target() {
        Target::One(addr) => Ok(addr),
        target => Ok(lookup(target).await?[0]),
    }
}

async fn lookup(target: Target) -> io::Result<Vec<SocketAddr>> {
    let name = match target {
        Target::One(addr) => return Ok(vec![addr]),
        Target::Ready(addrs) => return Ok(addrs),
        Target::Lookup(ref host, port) => format!("{host}:{port}"),
        Target::LookupStr(ref s) => s.clone(),
    };
    let lookup = runtime_core::spawn_blocking(move || {
        let delay = LOOKUP_DELAY_US.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        let addrs = match target {
            Target::Lookup(host, port) => std::net::ToSocketAddrs::to_socket_addrs(&(&*host, port)),
            Target::LookupStr(s) => std::net::ToSocketAddrs::to_socket_addrs(&s),
            Target::One(_) | Target::Ready(_) => unreachable!("returned above"),
        };
        addrs.map(Iterator::collect::<Vec<_>>)
    });
    let addrs = lookup
        .await
        .map_err(|e| io::Error::other(format!("looking up {name}: the pool did not run it: {e}")))?
        .map_err(|e| io::Error::new(e.kind(), format!("looking up {name}: {e}")))?;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{name} resolved to no address"),
        ));
    }
    Ok(addrs)
}

/// Runs `f` on each address `addr` resolves to until one succeeds; the error names the address.
pub(crate) async fn each_addr<T, F, Fut>(
    addr: &(impl ToSocketAddrs + ?Sized),
    mut f: F,
) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for addr in resolve(addr).await? {
        match f(addr).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(io::Error::new(e.kind(), format!("{addr}: {e}"))),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing")
    }))
}
