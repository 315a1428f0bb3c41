//! Memory lent to a source for one poll: the poll-based I/O traits (`AsyncRead`/`AsyncWrite`)
//! pass borrowed buffers, which the kernel may use only while the poll lasts.

use std::io::IoSlice;
use std::mem::MaybeUninit;

use crate::op::OpKind;
use crate::ops::MAX_LEN;

/// A read or write over memory the caller lends for the duration of one call to
/// [`Source::poll_lent`](crate::Source::poll_lent).
#[derive(Debug)]
pub enum Lent<'a> {
    /// Receive into these bytes (from their start).
    Recv(&'a mut [MaybeUninit<u8>]),
    /// Send these bytes.
    Send(&'a [u8]),
    /// Send these buffers' bytes in order.
    SendVectored(&'a [IoSlice<'a>]),
}

impl Lent<'_> {
    /// Whether this is a read.
    pub fn is_read(&self) -> bool {
        matches!(self, Lent::Recv(_))
    }

    /// Calls `f` with the operation over the lent memory. The `OpKind`'s pointers are valid for
    /// its access until `f` returns, and not after.
    pub fn with_kind<R>(&mut self, f: impl FnOnce(&OpKind) -> R) -> R {
        match self {
            Lent::Recv(buf) => f(&OpKind::Recv {
                buf: buf.as_mut_ptr().cast(),
                len: buf.len().min(MAX_LEN) as u32,
            }),
            Lent::Send(buf) => f(&OpKind::Send {
                buf: buf.as_ptr(),
                len: buf.len().min(MAX_LEN) as u32,
            }),
            Lent::SendVectored(bufs) => {
                // SAFETY: all-zero is a valid msghdr (no name, no control data).
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                // `IoSlice` is ABI-compatible with `iovec` on Unix (std guarantees it), and the
                // kernel only reads through a send's iovecs.
                msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
                msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
                f(&OpKind::SendMsg { msg: &msg })
            }
        }
    }
}
