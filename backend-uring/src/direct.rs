//! The `DirectFirst` strategy's first try: the operation as a nonblocking syscall on the calling
//! thread (the sockets of this backend are in blocking mode, so `MSG_DONTWAIT` makes it so).

use std::io;
use std::os::fd::RawFd;

use runtime_core::sys::cvt;
use runtime_core::{OpCode, OpKind};

/// Tries `kind` once without blocking. `None` means: hand it over (it would block, or it is an
/// operation that has no nonblocking form on a blocking socket).
pub(crate) fn try_direct(fd: RawFd, code: &OpCode) -> Option<io::Result<u32>> {
    const DONTWAIT: i32 = libc::MSG_DONTWAIT;
    const SEND: i32 = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // SAFETY: every pointer in `kind` is valid for the access its operation makes (the `OpCode`
    // invariant), and `fd` is the open fd of the source polling it.
    let n = unsafe {
        match *code.kind() {
            OpKind::Recv { buf, len } => libc::recv(fd, buf.cast(), len as usize, DONTWAIT),
            OpKind::Send { buf, len } => libc::send(fd, buf.cast(), len as usize, SEND),
            OpKind::RecvMsg { msg } => libc::recvmsg(fd, msg, DONTWAIT),
            OpKind::RecvMessage { msg, flags } => libc::recvmsg(fd, msg, flags | DONTWAIT),
            OpKind::SendMsg { msg } => libc::sendmsg(fd, msg, SEND),
            OpKind::Accept { .. } | OpKind::Connect { .. } | OpKind::Shutdown { .. } => {
                return None
            }
        }
    };
    match cvt(n) {
        Ok(n) => Some(Ok(n as u32)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) => Some(Err(e)),
    }
}
