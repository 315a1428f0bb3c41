//! One nonblocking attempt at an operation: the syscall the kernel would have made for io_uring.

use std::io;
use std::os::fd::RawFd;

use runtime_core::sys::take_error;
use runtime_core::{syscall, OpCode, OpKind};

/// What an operation remembers between attempts.
#[derive(Debug, Default)]
pub struct EpollOpState {
    /// A nonblocking `connect` is in progress; later attempts check for its outcome.
    connecting: bool,
}

/// Makes the syscall for `code` once. `WouldBlock` means: wait for readiness and call again.
pub(crate) fn attempt(fd: RawFd, code: &OpCode, state: &mut EpollOpState) -> io::Result<u32> {
    let n = match *code.kind() {
        OpKind::Accept { addr, len } => syscall!(accept4(
            fd,
            addr.cast(),
            len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC
        ))? as isize,
        OpKind::Connect { addr, len } => return connect(fd, addr, len, state),
        OpKind::Recv { buf, len } => syscall!(recv(fd, buf.cast(), len as usize, 0))?,
        OpKind::Send { buf, len } => {
            syscall!(send(fd, buf.cast(), len as usize, libc::MSG_NOSIGNAL))?
        }
        OpKind::RecvMsg { msg } => syscall!(recvmsg(fd, msg, 0))?,
        OpKind::SendMsg { msg } => syscall!(sendmsg(fd, msg, libc::MSG_NOSIGNAL))?,
        OpKind::Shutdown { how } => syscall!(shutdown(fd, how))? as isize,
    };
    Ok(n as u32)
}

fn connect(
    fd: RawFd,
    addr: *const libc::sockaddr_storage,
    len: libc::socklen_t,
    state: &mut EpollOpState,
) -> io::Result<u32> {
    if !state.connecting {
        return match syscall!(connect(fd, addr.cast(), len)) {
            Ok(_) => Ok(0),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                state.connecting = true;
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => Err(e),
        };
    }
    if let Some(err) = take_error(fd)? {
        return Err(err);
    }
    // No error yet: connected, or still in progress (a spurious wake).
    match runtime_core::sys::peer_addr(fd) {
        Ok(_) => Ok(0),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Err(io::ErrorKind::WouldBlock.into()),
        Err(e) => Err(e),
    }
}
