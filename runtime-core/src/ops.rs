//! The typed operations: safe async functions that build an [`Op`] over owned memory.
//!
//! This is the only place that turns owned buffers into raw pointers for the kernel; every
//! pointer handed to [`Op::new`] points into the value moved into the same `Op`.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::Source;
use crate::op::{Op, OpKind};
use crate::sys::{sockaddr_from_std, sockaddr_to_std};

/// Largest length passed to one operation: results are `i32` on io_uring.
const MAX_LEN: usize = i32::MAX as usize;

/// Accepts one connection; the new fd is in the mode [`Source::nonblocking`] asks for.
pub async fn accept<S: Source>(source: &S) -> io::Result<(OwnedFd, SocketAddr)> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut data = Box::new((
        storage,
        mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
    ));
    let kind = OpKind::Accept {
        addr: &mut data.0,
        len: &mut data.1,
    };
    // SAFETY: both pointers point into the box moved into the op, which keeps them in place.
    let (res, data) = unsafe { Op::new(source, kind, data) }.await;
    let fd = res?;
    // SAFETY: the kernel just returned this fd from accept; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let addr = sockaddr_to_std(&data.0, data.1)?;
    Ok((fd, addr))
}

/// Connects `source`'s socket to `addr`.
pub async fn connect<S: Source>(source: &S, addr: SocketAddr) -> io::Result<()> {
    let (storage, len) = sockaddr_from_std(&addr);
    let data = Box::new(storage);
    let kind = OpKind::Connect { addr: &*data, len };
    // SAFETY: the pointer points into the box moved into the op.
    let (res, _) = unsafe { Op::new(source, kind, data) }.await;
    res.map(drop)
}

/// Receives into `buf` (its whole capacity, from the start); returns the byte count, 0 at EOF.
pub async fn recv<S: Source, B: IoBufMut>(source: &S, mut buf: B) -> BufResult<usize, B> {
    let kind = OpKind::Recv {
        buf: buf.stable_mut_ptr(),
        len: buf.bytes_total().min(MAX_LEN) as u32,
    };
    // SAFETY: `IoBufMut` promises the pointer stays valid for `bytes_total` bytes while `buf`
    // lives and moves, and `buf` is moved into the op.
    let (res, mut buf) = unsafe { Op::new(source, kind, buf) }.await;
    let res = res.map(|n| {
        // SAFETY: the kernel wrote `n <= bytes_total` bytes from the start of the buffer.
        unsafe { buf.set_init(n as usize) };
        n as usize
    });
    BufResult(res, buf)
}

/// Sends the initialised bytes of `buf`; returns how many were sent.
pub async fn send<S: Source, B: IoBuf>(source: &S, buf: B) -> BufResult<usize, B> {
    let kind = OpKind::Send {
        buf: buf.stable_ptr(),
        len: buf.bytes_init().min(MAX_LEN) as u32,
    };
    // SAFETY: `IoBuf` promises the pointer stays valid for `bytes_init` bytes while `buf` lives.
    let (res, buf) = unsafe { Op::new(source, kind, buf) }.await;
    BufResult(res.map(|n| n as usize), buf)
}

/// Sends all the initialised bytes of `buf`, in as many sends as it takes. A send that takes
/// nothing is a `WriteZero` error.
pub async fn send_all<S: Source, B: IoBuf>(source: &S, mut buf: B) -> BufResult<(), B> {
    let total = buf.bytes_init();
    let mut written = 0;
    while written < total {
        let BufResult(res, slice) = send(source, buf.slice(written..total)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) => {
                let err = io::Error::new(io::ErrorKind::WriteZero, "peer accepted no more bytes");
                return BufResult(Err(err), buf);
            }
            Ok(n) => written += n,
            Err(e) => return BufResult(Err(e), buf),
        }
    }
    BufResult(Ok(()), buf)
}

/// The memory of a vectored operation: the buffers, their iovecs and the message header.
struct Vectored<B> {
    bufs: Vec<B>,
    _iovecs: Box<[libc::iovec]>,
    msg: Box<libc::msghdr>,
}

// SAFETY: the raw pointers in `msg` and the iovecs point only into `bufs` and `_iovecs`, which
// move with the struct; sending it to another thread sends that memory along with them.
unsafe impl<B: Send> Send for Vectored<B> {}

fn vectored<B>(bufs: Vec<B>, iovecs: Box<[libc::iovec]>) -> Vectored<B> {
    // SAFETY: all-zero is a valid msghdr (no name, no control data).
    let mut msg: Box<libc::msghdr> = Box::new(unsafe { mem::zeroed() });
    msg.msg_iov = iovecs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iovecs.len() as _;
    Vectored {
        bufs,
        _iovecs: iovecs,
        msg,
    }
}

/// Receives into several buffers in turn (`readv`); returns the total byte count.
pub async fn readv<S: Source, B: IoBufMut>(
    source: &S,
    mut bufs: Vec<B>,
) -> BufResult<usize, Vec<B>> {
    let iovecs: Box<[libc::iovec]> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.stable_mut_ptr().cast(),
            iov_len: b.bytes_total(),
        })
        .collect();
    let mut data = vectored(bufs, iovecs);
    let kind = OpKind::RecvMsg {
        msg: &mut *data.msg,
    };
    // SAFETY: the header, the iovecs and the buffers they point to are all heap memory owned by
    // `data`, moved into the op.
    let (res, data) = unsafe { Op::new(source, kind, data) }.await;
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
    let iovecs: Box<[libc::iovec]> = bufs
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.stable_ptr() as *mut libc::c_void,
            iov_len: b.bytes_init(),
        })
        .collect();
    let data = vectored(bufs, iovecs);
    let kind = OpKind::SendMsg { msg: &*data.msg };
    // SAFETY: as in `readv`; the kernel only reads through these pointers.
    let (res, data) = unsafe { Op::new(source, kind, data) }.await;
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
    let (res, ()) = unsafe { Op::new(source, OpKind::Shutdown { how }, ()) }.await;
    res.map(drop)
}
