//! The typed operations: safe async functions that build an [`Op`] over owned memory.
//!
//! This is the only place that turns owned buffers into raw pointers for the kernel; every
//! pointer is derived by the `Op` itself, from the value it owns, where that value finally lives
//! (so no later move of a `Box` it holds invalidates the pointers the kernel was given).

use std::future::Future;
use std::io;
use std::mem;
use std::os::fd::{FromRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::buf::{BufResult, IoBuf, IoBufMut, Slice};
use crate::driver::Source;
pub use crate::message::{recv_msg, send_msg, Received, ReceivedControl, RecvOptions, MAX_FDS};
use crate::op::{Op, OpKind, Then};
use socket2::SockAddr;

/// Largest length passed to one operation: results are `i32` on io_uring.
pub(crate) const MAX_LEN: usize = i32::MAX as usize;

/// An address the kernel wrote into `storage` (`len` bytes of it).
pub(crate) fn sock_addr_from_raw(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> SockAddr {
    let len = len.min(mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t);
    // SAFETY: the closure copies a whole sockaddr_storage into the zeroed storage `try_init`
    // gives and sets the length the kernel reported (capped at the storage's size), so family
    // and length describe what the kernel wrote.
    let ((), addr) = unsafe {
        SockAddr::try_init(|into, into_len| {
            std::ptr::copy_nonoverlapping(storage, into.cast::<libc::sockaddr_storage>(), 1);
            *into_len = len;
            Ok(())
        })
    }
    .expect("the closure does not fail");
    addr
}

/// Accepts one connection; the new fd is in the mode [`Source::nonblocking`] asks for.
pub async fn accept<S: Source>(source: &S) -> io::Result<(OwnedFd, SockAddr)> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let data = Box::new((
        storage,
        mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
    ));
    let kind_of = |d: &mut Box<(libc::sockaddr_storage, libc::socklen_t)>| OpKind::Accept {
        addr: &mut d.0,
        len: &mut d.1,
    };
    // SAFETY: both pointers point into the box the op owns, whose heap memory stays in place.
    let (res, data) = unsafe { Op::new(source, data, kind_of) }.await;
    let fd = res?;
    // SAFETY: the kernel just returned this fd from accept; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    Ok((fd, sock_addr_from_raw(&data.0, data.1)))
}

/// Connects `source`'s socket to `addr`.
pub async fn connect<S: Source>(source: &S, addr: SockAddr) -> io::Result<()> {
    let data = Box::new(addr);
    let kind_of = |d: &mut Box<SockAddr>| OpKind::Connect {
        addr: d.as_ptr().cast(),
        len: d.len(),
    };
    // SAFETY: the pointer points into the box the op owns.
    let (res, _) = unsafe { Op::new(source, data, kind_of) }.await;
    res.map(drop)
}

/// Receives into `buf` (its whole capacity, from the start); returns the byte count, 0 at EOF.
pub fn recv<S: Source, B: IoBufMut>(
    source: &S,
    buf: B,
) -> impl Future<Output = BufResult<usize, B>> + '_ {
    let kind_of = |b: &mut B| OpKind::Recv {
        buf: b.stable_mut_ptr(),
        len: b.bytes_total().min(MAX_LEN) as u32,
    };
    // SAFETY: `IoBufMut` promises the pointer stays valid for `bytes_total` bytes while `buf`
    // lives and moves, and the op owns `buf`.
    let op = unsafe { Op::new(source, buf, kind_of) };
    Then::new(op, |res: io::Result<u32>, mut buf: B| {
        let res = res.map(|n| {
            // SAFETY: the kernel wrote `n <= bytes_total` bytes from the start of the buffer.
            unsafe { buf.set_init(n as usize) };
            n as usize
        });
        BufResult(res, buf)
    })
}

/// The operation that sends the initialised bytes of `buf`.
fn send_op<S: Source, B: IoBuf>(source: &S, buf: B) -> Op<'_, S, B> {
    let kind_of = |b: &mut B| OpKind::Send {
        buf: b.stable_ptr(),
        len: b.bytes_init().min(MAX_LEN) as u32,
    };
    // SAFETY: `IoBuf` promises the pointer stays valid for `bytes_init` bytes while `buf` lives.
    unsafe { Op::new(source, buf, kind_of) }
}

/// Sends the initialised bytes of `buf`; returns how many were sent.
pub fn send<S: Source, B: IoBuf>(
    source: &S,
    buf: B,
) -> impl Future<Output = BufResult<usize, B>> + '_ {
    Then::new(send_op(source, buf), |res: io::Result<u32>, buf: B| {
        BufResult(res.map(|n| n as usize), buf)
    })
}

/// Sends all the initialised bytes of `buf`, in as many sends as it takes. A send that takes
/// nothing is a `WriteZero` error.
pub fn send_all<S: Source, B: IoBuf>(source: &S, buf: B) -> SendAll<'_, S, B> {
    let total = buf.bytes_init();
    SendAll {
        op: send_op(source, buf.slice(..total)),
        total,
    }
}

/// The future of [`send_all`]: one send at a time, each of the bytes the ones before left.
/// (Written out rather than an `async fn` so that a poll goes straight to the send.)
#[must_use = "futures do nothing unless polled"]
pub struct SendAll<'a, S: Source, B: IoBuf> {
    /// The send of the bytes the sends before it left: its slice starts where they ended.
    op: Op<'a, S, Slice<B>>,
    total: usize,
}

impl<S: Source, B: IoBuf> Future for SendAll<'_, S, B> {
    type Output = BufResult<(), B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.total == 0 {
            // Nothing to send: no send is made.
            let slice = this.op.take_unstarted().expect("polled after completion");
            return Poll::Ready(BufResult(Ok(()), slice.into_inner()));
        }
        loop {
            let (res, slice) = std::task::ready!(Pin::new(&mut this.op).poll(cx));
            let from = slice.begin();
            let buf = slice.into_inner();
            let written = match res {
                Ok(0) => {
                    let err =
                        io::Error::new(io::ErrorKind::WriteZero, "peer accepted no more bytes");
                    return Poll::Ready(BufResult(Err(err), buf));
                }
                Ok(n) => from + n as usize,
                Err(e) => return Poll::Ready(BufResult(Err(e), buf)),
            };
            if written >= this.total {
                return Poll::Ready(BufResult(Ok(()), buf));
            }
            let rest = buf.slice(written..this.total);
            this.op = send_op(this.op.source(), rest);
        }
    }
}

impl<S: Source, B: IoBuf> std::fmt::Debug for SendAll<'_, S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendAll")
            .field("op", &self.op)
            .field("total", &self.total)
            .finish()
    }
}

/// The memory of a vectored operation: the buffers, their iovecs and the message header.
struct Vectored<B> {
    bufs: Vec<B>,
    iovecs: Box<[libc::iovec]>,
    msg: Box<libc::msghdr>,
}

// SAFETY: the raw pointers in `msg` and the iovecs point only into `bufs` and `iovecs`, which
// move with the struct; sending it to another thread sends that memory along with them.
unsafe impl<B: Send> Send for Vectored<B> {}

impl<B> Vectored<B> {
    fn new(bufs: Vec<B>) -> Self {
        let empty = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        Vectored {
            iovecs: vec![empty; bufs.len()].into_boxed_slice(),
            bufs,
            // SAFETY: all-zero is a valid msghdr (no name, no control data).
            msg: Box::new(unsafe { mem::zeroed() }),
        }
    }

    /// Points the iovecs at the buffers (`iovec` gives each one's start and length) and the
    /// header at the iovecs, from where they all live now; returns the header.
    fn link(&mut self, iovec: impl Fn(&mut B) -> libc::iovec) -> *mut libc::msghdr {
        for (iov, buf) in self.iovecs.iter_mut().zip(&mut self.bufs) {
            *iov = iovec(buf);
        }
        self.msg.msg_iov = self.iovecs.as_mut_ptr();
        self.msg.msg_iovlen = self.iovecs.len() as _;
        &mut *self.msg
    }
}

/// Receives into several buffers in turn (`readv`); returns the total byte count.
pub async fn readv<S: Source, B: IoBufMut>(source: &S, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
    let kind_of = |v: &mut Vectored<B>| OpKind::RecvMsg {
        msg: v.link(|b| libc::iovec {
            iov_base: b.stable_mut_ptr().cast(),
            iov_len: b.bytes_total(),
        }),
    };
    // SAFETY: the header, the iovecs and the buffers they point to are all heap memory owned by
    // the `Vectored` the op owns.
    let (res, data) = unsafe { Op::new(source, Vectored::new(bufs), kind_of) }.await;
    let mut bufs = data.bufs;
    let res = res.map(|n| {
        let mut left = n as usize;
        for b in &mut bufs {
            let filled = left.min(b.bytes_total());
            // SAFETY: the kernel filled the iovecs in order; this buffer got `filled` bytes.
            unsafe { b.set_init(filled) };
            left -= filled;
        }
        n as usize
    });
    BufResult(res, bufs)
}

/// Sends the initialised bytes of several buffers in turn (`writev`); returns the byte count.
pub async fn writev<S: Source, B: IoBuf>(source: &S, bufs: Vec<B>) -> BufResult<usize, Vec<B>> {
    let kind_of = |v: &mut Vectored<B>| OpKind::SendMsg {
        msg: v.link(|b| libc::iovec {
            iov_base: b.stable_ptr() as *mut libc::c_void,
            iov_len: b.bytes_init(),
        }),
    };
    // SAFETY: as in `readv`; the kernel only reads through these pointers.
    let (res, data) = unsafe { Op::new(source, Vectored::new(bufs), kind_of) }.await;
    BufResult(res.map(|n| n as usize), data.bufs)
}

/// Shuts down one or both directions of the connection.
pub async fn shutdown<S: Source>(source: &S, how: std::net::Shutdown) -> io::Result<()> {
    let how = match how {
        std::net::Shutdown::Read => libc::SHUT_RD,
        std::net::Shutdown::Write => libc::SHUT_WR,
        std::net::Shutdown::Both => libc::SHUT_RDWR,
    };
    // SAFETY: the operation carries no pointers.
    let (res, _) =
        unsafe { Op::new(source, how, |how: &mut i32| OpKind::Shutdown { how: *how }) }.await;
    res.map(drop)
}
