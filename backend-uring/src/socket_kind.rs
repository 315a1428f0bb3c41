//! What kind of socket an fd is, where a fast path depends on it (zero-copy sends take TCP
//! only; datagram multishot receives, UDP only).

use std::os::fd::BorrowedFd;

use socket2::{Domain, Protocol, SockRef, Type};

/// Whether `fd` is an internet (IPv4 or IPv6) socket of type `ty`, and of `protocol` if given
/// (`false` where the kernel does not say).
pub(crate) fn is_inet(fd: BorrowedFd<'_>, ty: Type, protocol: Option<Protocol>) -> bool {
    let socket = SockRef::from(&fd);
    matches!(socket.domain(), Ok(d) if d == Domain::IPV4 || d == Domain::IPV6)
        && matches!(socket.r#type(), Ok(t) if t == ty)
        && protocol.is_none_or(|p| matches!(socket.protocol(), Ok(Some(q)) if q == p))
}
