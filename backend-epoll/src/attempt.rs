//! One nonblocking attempt at an operation: the syscall the kernel would have made for io_uring.

use std::io;
use std::os::fd::RawFd;

use std::os::fd::BorrowedFd;

use runtime_core::sys::cvt;
use runtime_core::OpKind;
use socket2::SockRef;

/// What an operation remembers between attempts.
#[derive(Debug, Default)]
pub struct EpollOpState {
    /// A nonblocking `connect` is in progress; later attempts check for its outcome.
    connecting: bool,
}

/// Makes the syscall for `kind` once. `WouldBlock` means: wait for readiness and call again.
///
/// # Safety
/// Every pointer in `kind` must be valid for the access its operation makes, for this call.
pub(crate) unsafe fn attempt(
    fd: RawFd,
    kind: &OpKind,
    state: &mut EpollOpState,
) -> io::Result<u32> {
    let kind = *kind;
    if let OpKind::Connect { addr, len } = kind {
        // SAFETY: the caller's promise.
        return unsafe { connect(fd, addr, len, state) };
    }
    // SAFETY: every pointer in `kind` is valid for its access (the caller's promise), and `fd`
    // is the open fd of the source polling this operation.
    let n = unsafe {
        match kind {
            OpKind::Accept { addr, len } => libc::accept4(
                fd,
                addr.cast(),
                len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            ) as isize,
            OpKind::Connect { .. } => unreachable!("handled above"),
            OpKind::Recv { buf, len } => libc::recv(fd, buf.cast(), len as usize, 0),
            OpKind::Send { buf, len } => {
                libc::send(fd, buf.cast(), len as usize, libc::MSG_NOSIGNAL)
            }
            OpKind::RecvMsg { msg } => libc::recvmsg(fd, msg, 0),
            OpKind::RecvMessage { msg, flags } => libc::recvmsg(fd, msg, flags),
            OpKind::SendMsg { msg } => libc::sendmsg(fd, msg, libc::MSG_NOSIGNAL),
            OpKind::Shutdown { how } => libc::shutdown(fd, how) as isize,
        }
    };
    Ok(cvt(n)? as u32)
}

/// # Safety
/// `addr` must point to `len` bytes of address.
unsafe fn connect(
    fd: RawFd,
    addr: *const libc::sockaddr_storage,
    len: libc::socklen_t,
    state: &mut EpollOpState,
) -> io::Result<u32> {
    if !state.connecting {
        // SAFETY: `addr` points to `len` bytes of address (the caller's promise).
        return match cvt(unsafe { libc::connect(fd, addr.cast(), len) }) {
            Ok(_) => Ok(0),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                state.connecting = true;
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => Err(e),
        };
    }
    // SAFETY: `fd` is the open fd of the source polling this operation, for this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let socket = SockRef::from(&fd);
    if let Some(err) = socket.take_error()? {
        return Err(err);
    }
    // No error yet: connected, or still in progress (a spurious wake).
    match socket.peer_addr() {
        Ok(_) => Ok(0),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}
