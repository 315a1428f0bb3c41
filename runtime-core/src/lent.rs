//! Memory lent to a source for one poll: the poll-based I/O traits (`AsyncRead`/`AsyncWrite`)
//! pass borrowed buffers, which the kernel may use only while the poll lasts.

use std::io::IoSlice;
use std::mem::MaybeUninit;

use socket2::SockAddr;

use crate::op::OpKind;
use crate::ops::{sock_addr_from_raw, MAX_LEN};

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
    /// Receive one datagram into these bytes (from their start), its sender into `from`
    /// (`None` if the kernel reports none); the result is the datagram's whole length, which
    /// may exceed the bytes' (`MSG_TRUNC`).
    RecvFrom {
        /// Where the datagram goes.
        buf: &'a mut [MaybeUninit<u8>],
        /// Where the sender's address goes.
        from: &'a mut Option<SockAddr>,
    },
    /// Send these bytes as one datagram to `to`.
    SendTo {
        /// The datagram.
        buf: &'a [u8],
        /// Its destination.
        to: &'a SockAddr,
    },
}

impl Lent<'_> {
    /// Whether this is a read.
    pub fn is_read(&self) -> bool {
        matches!(self, Lent::Recv(_) | Lent::RecvFrom { .. })
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
            Lent::RecvFrom { buf, from } => {
                // SAFETY: all-zero is a valid sockaddr_storage.
                let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
                let mut iov = libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len().min(MAX_LEN),
                };
                // SAFETY: all-zero is a valid msghdr.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
                msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
                let res = f(&OpKind::RecvMessage {
                    msg: &mut msg,
                    flags: libc::MSG_TRUNC,
                });
                **from = (msg.msg_namelen > 0).then(|| sock_addr_from_raw(&name, msg.msg_namelen));
                res
            }
            Lent::SendTo { buf, to } => {
                let mut iov = libc::iovec {
                    iov_base: buf.as_ptr() as *mut libc::c_void,
                    iov_len: buf.len().min(MAX_LEN),
                };
                // SAFETY: all-zero is a valid msghdr.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                // The kernel only reads the address of a send.
                msg.msg_name = to.as_ptr() as *mut libc::c_void;
                msg.msg_namelen = to.len();
                f(&OpKind::SendMsg { msg: &msg })
            }
        }
    }
}
