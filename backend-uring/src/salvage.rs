//! What the kernel produced for operations whose futures were dropped, kept for the next
//! operation of the same kind on the same socket.
//!
//! Dropping a `recv` whose SQE the kernel completed anyway would lose the bytes it read, and
//! dropping an `accept` would lose the connection. Instead the late result lands here: the next
//! read of the socket returns those bytes first (and waits while a dropped read may still
//! deliver, so bytes never come out of order), the next accept returns that connection. A
//! dropped message receive (`recvmsg` with a sender and fds) is kept whole, and the next
//! message receive gets its bytes, sender and fds together. On
//! epoll a dropped operation has done nothing, so there is nothing to keep; with this, reads
//! and accepts are cancel-safe on both backends.

use std::any::Any;
use std::collections::VecDeque;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};

use parking_lot::Mutex;
use runtime_core::ops::ReceivedControl;
use runtime_core::{OpCode, OpKind};

/// A copy of an abandoned operation's `OpKind`.
///
/// # Invariant
/// Its pointers point into the `keep_alive` memory of the [`Abandoned`] that holds it, and are
/// used only while that memory is alive.
struct KeptKind(OpKind);

// SAFETY: the pointers travel with the memory they point into (`KeptKind`'s invariant), which is
// `Send`.
unsafe impl Send for KeptKind {}

/// An operation whose future is gone, waiting for its CQE. Always boxed: it is made only on the
/// cancel path, and as a pointer it keeps every lifecycle, op-table entry and deferred work
/// item small, where they are moved on every operation.
pub(crate) struct Abandoned {
    kind: KeptKind,
    salvage: Arc<Salvage>,
    /// Dropped only after `kind`'s pointers were last used.
    keep_alive: Box<dyn Any + Send>,
}

impl Abandoned {
    /// `keep_alive` owns the memory `code` points into.
    pub(crate) fn new(
        code: &OpCode,
        salvage: Arc<Salvage>,
        keep_alive: Box<dyn Any + Send>,
    ) -> Box<Self> {
        let kind = *code.kind();
        salvage.begin(&kind);
        Box::new(Abandoned {
            kind: KeptKind(kind),
            salvage,
            keep_alive,
        })
    }

    /// The kernel finished the operation with `result`: keep what it produced, free the memory.
    pub(crate) fn finish(self, result: i32) {
        // SAFETY: `keep_alive` is still alive here (dropped below), so `kind`'s pointers are valid
        // (`KeptKind`'s invariant) and the kernel is done writing through them.
        unsafe { self.salvage.finish(&self.kind.0, result) };
        drop(self.keep_alive);
    }
}

/// What one abandoned read received.
struct KeptRead {
    bytes: Vec<u8>,
    /// How many of `bytes` stream reads took already.
    taken: usize,
    /// A message's sender, as the kernel wrote it.
    name: Option<(libc::sockaddr_storage, libc::socklen_t)>,
    /// A message's control data, owning its fds until a message receive takes them.
    control: Option<ReceivedControl>,
    /// A datagram's whole length (more than `bytes` when the dropped receive truncated it);
    /// `None` for stream bytes.
    datagram_len: Option<usize>,
}

impl KeptRead {
    fn rest(&self) -> &[u8] {
        &self.bytes[self.taken..]
    }
}

/// Copies `from` into the iovecs, in order, as far as they go; returns the bytes copied.
///
/// # Safety
/// The iovecs must be valid for writes of their lengths, and not overlap `from`.
unsafe fn fill(iovecs: &[libc::iovec], from: &[u8]) -> usize {
    let mut copied = 0;
    for iov in iovecs {
        let n = iov.iov_len.min(from.len() - copied);
        // SAFETY: the caller's promise.
        unsafe { std::ptr::copy_nonoverlapping(from[copied..].as_ptr(), iov.iov_base.cast(), n) };
        copied += n;
    }
    copied
}

#[derive(Default)]
struct Kept {
    /// Abandoned reads whose CQE has not come yet.
    pending_reads: usize,
    /// What abandoned reads received, oldest first.
    reads: VecDeque<KeptRead>,
    /// Abandoned accepts whose CQE has not come yet.
    pending_accepts: usize,
    accepted: VecDeque<(OwnedFd, libc::sockaddr_storage, libc::socklen_t)>,
    waiters: Vec<Waker>,
}

impl KeptRead {
    fn bytes(bytes: Vec<u8>) -> Self {
        KeptRead {
            bytes,
            taken: 0,
            name: None,
            control: None,
            datagram_len: None,
        }
    }

    /// What the dropped message receive `msg` got, with `result` (`None`: nothing to keep, an
    /// error or a stream's end). Its fds move out of its control data into the kept read.
    ///
    /// # Safety
    /// `msg`, its iovecs, name and control data must be valid, and the kernel done with them.
    #[allow(clippy::unnecessary_cast)] // `msg_controllen` is not `usize` on every libc
    unsafe fn message(msg: *mut libc::msghdr, flags: i32, result: i32) -> Option<Self> {
        // SAFETY: the caller's promise.
        let msg = unsafe { &mut *msg };
        let datagram = flags & libc::MSG_TRUNC != 0;
        let control = (msg.msg_controllen > 0 && !msg.msg_control.is_null()).then(|| {
            // SAFETY: the kernel wrote `msg_controllen` bytes of control data there, for this
            // receive; nothing else owns its fds (the receive's own memory forgets them).
            unsafe { ReceivedControl::take(msg.msg_control.cast(), msg.msg_controllen as usize) }
        });
        if result < 0 || (result == 0 && !datagram && control.is_none()) {
            return None;
        }
        let len = result as usize;
        // SAFETY: the kernel filled the iovecs in order, up to `len` bytes.
        let bytes = unsafe { gather(msg, len) };
        let name = (!msg.msg_name.is_null() && msg.msg_namelen > 0).then(|| {
            // SAFETY: the kernel wrote the sender's address there; a sockaddr_storage holds
            // any address, and `msg_namelen` says how much of it is set.
            (
                unsafe { *msg.msg_name.cast::<libc::sockaddr_storage>() },
                msg.msg_namelen,
            )
        });
        Some(KeptRead {
            bytes,
            taken: 0,
            name,
            control,
            datagram_len: datagram.then_some(len),
        })
    }
}

/// The first `len` bytes of `msg`'s iovecs (fewer if they hold less).
///
/// # Safety
/// `msg` and its iovecs must be valid, with `len` bytes (or all of them) written.
unsafe fn gather(msg: *const libc::msghdr, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    // SAFETY: the caller's promise.
    for iov in unsafe { iovecs(msg) } {
        let n = (len - bytes.len()).min(iov.iov_len);
        // SAFETY: the kernel wrote the first `n` bytes of this iovec.
        bytes
            .extend_from_slice(unsafe { std::slice::from_raw_parts(iov.iov_base as *const u8, n) });
    }
    bytes
}

impl Kept {
    /// A byte read: fills the iovecs from the kept reads in order (their senders are of no use
    /// to it, and their fds are closed, as the kernel does for a read without room for them).
    ///
    /// # Safety
    /// The iovecs must be valid for writes of their lengths.
    unsafe fn take_bytes(&mut self, iovecs: &[libc::iovec]) -> u32 {
        let room: usize = iovecs.iter().map(|iov| iov.iov_len).sum();
        let mut out = Vec::with_capacity(room.min(64 * 1024));
        while out.len() < room {
            let Some(front) = self.reads.front_mut() else {
                break;
            };
            let n = (room - out.len()).min(front.rest().len());
            out.extend_from_slice(&front.rest()[..n]);
            front.taken += n;
            if front.rest().is_empty() {
                self.reads.pop_front();
            }
        }
        // SAFETY: the caller's promise; `out` is ours.
        unsafe { fill(iovecs, &out) as u32 }
    }

    /// A message read: the oldest kept read, as `recvmsg` would have returned it. A datagram
    /// is taken whole (truncated to the room, as `recvmsg` does); stream bytes as far as they
    /// fit, the rest staying first. Its sender and fds go with its first bytes; fds with no
    /// room for them are closed (`MSG_CTRUNC`). Under `MSG_PEEK` nothing is taken and no fds
    /// are given.
    ///
    /// # Safety
    /// `msg`, its iovecs, name and control data must be valid for writes of their lengths.
    #[allow(clippy::unnecessary_cast)] // `msg_controllen` is not `usize` on every libc
    unsafe fn take_message(&mut self, msg: *mut libc::msghdr, flags: i32) -> u32 {
        let peek = flags & libc::MSG_PEEK != 0;
        // SAFETY: the caller's promise.
        let iovecs = unsafe { iovecs(msg) };
        // SAFETY: the caller's promise.
        let msg = unsafe { &mut *msg };
        let front = self.reads.front_mut().expect("checked by the caller");
        // SAFETY: the caller's promise; the kept bytes are ours.
        let copied = unsafe { fill(iovecs, front.rest()) };
        msg.msg_flags = 0;
        match (&front.name, msg.msg_name.is_null()) {
            (Some((name, len)), false) => {
                let n = (*len as usize).min(msg.msg_namelen as usize);
                // SAFETY: the name buffer is valid for `msg_namelen` bytes (the caller's
                // promise), and `name` holds `len >= n`.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        (name as *const libc::sockaddr_storage).cast::<u8>(),
                        msg.msg_name.cast::<u8>(),
                        n,
                    )
                };
                msg.msg_namelen = *len;
            }
            _ => msg.msg_namelen = 0,
        }
        let room = msg.msg_controllen as usize;
        msg.msg_controllen = 0;
        if let Some(control) = front.control.take_if(|_| !peek) {
            if !msg.msg_control.is_null() && control.len() <= room {
                msg.msg_controllen = control.len() as _;
                // SAFETY: the control buffer is valid for `room >= len` bytes, aligned for
                // cmsghdr (the caller's promise); the fds are now the receive's.
                unsafe { control.give(msg.msg_control.cast()) };
            } else {
                msg.msg_flags |= libc::MSG_CTRUNC; // dropping `control` closes its fds
            }
        }
        let result = match front.datagram_len {
            Some(whole) => {
                if whole > copied {
                    msg.msg_flags |= libc::MSG_TRUNC;
                }
                if !peek {
                    self.reads.pop_front();
                }
                if flags & libc::MSG_TRUNC != 0 {
                    whole
                } else {
                    copied
                }
            }
            None => {
                if !peek {
                    front.taken += copied;
                    if front.rest().is_empty() {
                        self.reads.pop_front();
                    }
                }
                copied
            }
        };
        result as u32
    }
}

/// One socket's kept results.
#[derive(Default)]
pub(crate) struct Salvage {
    /// Set while anything is kept or pending: the fast path skips the lock when clear.
    active: AtomicBool,
    kept: Mutex<Kept>,
}

/// The iovecs of `msg`.
///
/// # Safety
/// `msg` and its iovec array must be valid for the returned lifetime.
#[allow(clippy::unnecessary_cast)] // `msg_iovlen` is not `usize` on every libc
pub(crate) unsafe fn iovecs<'a>(msg: *const libc::msghdr) -> &'a [libc::iovec] {
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts((*msg).msg_iov, (*msg).msg_iovlen as usize) }
}

/// Whether `kind` receives (and, unless it peeks, consumes) what the socket received.
pub(crate) fn is_read(kind: &OpKind) -> bool {
    matches!(
        kind,
        OpKind::Recv { .. } | OpKind::RecvMsg { .. } | OpKind::RecvMessage { .. }
    )
}

/// Whether `kind` only peeks: it consumes nothing, so a dropped one leaves nothing to keep.
fn peeks(kind: &OpKind) -> bool {
    matches!(kind, OpKind::RecvMessage { flags, .. } if flags & libc::MSG_PEEK != 0)
}

impl Salvage {
    /// Whether anything is kept, or an abandoned read or accept may still bring something.
    pub(crate) fn holds(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    fn update_active(&self, kept: &Kept) {
        let active = kept.pending_reads > 0
            || !kept.reads.is_empty()
            || kept.pending_accepts > 0
            || !kept.accepted.is_empty();
        self.active.store(active, Ordering::Release);
    }

    fn begin(&self, kind: &OpKind) {
        let mut kept = self.kept.lock();
        match kind {
            k if is_read(k) && !peeks(k) => kept.pending_reads += 1,
            OpKind::Accept { .. } => kept.pending_accepts += 1,
            _ => return,
        }
        self.update_active(&kept);
    }

    /// # Safety
    /// `kind`'s pointers must be valid, and the kernel done with them.
    unsafe fn finish(&self, kind: &OpKind, result: i32) {
        let mut kept = self.kept.lock();
        match *kind {
            ref k if peeks(k) => return,
            OpKind::Recv { buf, .. } => {
                kept.pending_reads -= 1;
                if result > 0 {
                    // SAFETY: the kernel wrote `result` bytes at `buf` (the caller's promise).
                    let data = unsafe { std::slice::from_raw_parts(buf, result as usize) };
                    kept.reads.push_back(KeptRead::bytes(data.to_vec()));
                }
            }
            OpKind::RecvMsg { msg } => {
                kept.pending_reads -= 1;
                if result > 0 {
                    // SAFETY: `msg` and its iovecs are valid (the caller's promise).
                    let bytes = unsafe { gather(msg, result as usize) };
                    kept.reads.push_back(KeptRead::bytes(bytes));
                }
            }
            OpKind::RecvMessage { msg, flags } => {
                kept.pending_reads -= 1;
                // SAFETY: `msg`, its iovecs, name and control data are valid, and the kernel is
                // done with them (the caller's promise).
                if let Some(read) = unsafe { KeptRead::message(msg, flags, result) } {
                    kept.reads.push_back(read);
                }
            }
            OpKind::Accept { addr, len } => {
                kept.pending_accepts -= 1;
                if result >= 0 {
                    // SAFETY: the kernel gave this fd to the abandoned accept; nothing owns it.
                    let fd = unsafe { OwnedFd::from_raw_fd(result) };
                    // SAFETY: the kernel filled the address and its length.
                    let (addr, len) = unsafe { (*addr, *len) };
                    kept.accepted.push_back((fd, addr, len));
                }
            }
            OpKind::Connect { .. }
            | OpKind::Send { .. }
            | OpKind::SendMsg { .. }
            | OpKind::Shutdown { .. } => return,
        }
        self.update_active(&kept);
        let waiters = std::mem::take(&mut kept.waiters);
        drop(kept);
        // Woken unlocked: a waker may run code that reaches this salvage again.
        for w in waiters {
            w.wake();
        }
    }

    /// For an operation about to start: its result from what was kept, `Pending` if it must
    /// wait for an abandoned one to finish first, or `None` to go to the kernel.
    ///
    /// # Safety
    /// `kind`'s pointers must be valid for the operation's access.
    pub(crate) unsafe fn take(
        &self,
        kind: &OpKind,
        waker: &Waker,
    ) -> Option<Poll<std::io::Result<u32>>> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        let mut kept = self.kept.lock();
        if matches!(kind, OpKind::Recv { .. } | OpKind::RecvMsg { .. }) {
            // Kept reads with no bytes left (a datagram of none, all taken) have nothing for a
            // byte read, which must not return 0 (the end of the stream) for them.
            while kept.reads.front().is_some_and(|r| r.rest().is_empty()) {
                kept.reads.pop_front();
            }
        }
        let res = match *kind {
            OpKind::Recv { buf, len } if !kept.reads.is_empty() => {
                let iov = libc::iovec {
                    iov_base: buf.cast(),
                    iov_len: len as usize,
                };
                // SAFETY: `buf` is valid for `len` bytes of writes (the caller's promise).
                Poll::Ready(Ok(unsafe { kept.take_bytes(&[iov]) }))
            }
            OpKind::RecvMsg { msg } if !kept.reads.is_empty() => {
                // SAFETY: `msg` and its iovecs are valid (the caller's promise).
                Poll::Ready(Ok(unsafe { kept.take_bytes(iovecs(msg)) }))
            }
            OpKind::RecvMessage { msg, flags } if !kept.reads.is_empty() => {
                // SAFETY: `msg`, its iovecs, name and control data are valid for writes (the
                // caller's promise).
                Poll::Ready(Ok(unsafe { kept.take_message(msg, flags) }))
            }
            OpKind::Accept { addr, len } if !kept.accepted.is_empty() => {
                let (fd, storage, storage_len) = kept.accepted.pop_front().expect("checked");
                // SAFETY: `addr` and `len` are valid for writes (the caller's promise).
                unsafe {
                    addr.write(storage);
                    len.write(storage_len);
                }
                Poll::Ready(Ok(fd.into_raw_fd() as u32))
            }
            ref k
                if (is_read(k) && kept.pending_reads > 0)
                    || (matches!(k, OpKind::Accept { .. }) && kept.pending_accepts > 0) =>
            {
                kept.waiters.push(waker.clone());
                return Some(Poll::Pending);
            }
            _ => return None,
        };
        self.update_active(&kept);
        Some(res)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{mpsc, Arc};
    use std::task::{Poll, Wake, Waker};
    use std::time::Duration;

    use runtime_core::OpKind;

    use super::Salvage;

    /// A reader whose wake reads the salvage at once (as a task dropped or polled inside its
    /// wake would), and reports what it got.
    struct ReadsOnWake(Arc<Salvage>, mpsc::Sender<Vec<u8>>);

    impl Wake for ReadsOnWake {
        fn wake(self: Arc<Self>) {
            let mut out = [0u8; 8];
            let kind = OpKind::Recv {
                buf: out.as_mut_ptr(),
                len: 8,
            };
            // SAFETY: `out` is valid for 8 bytes of writes for the call.
            if let Some(Poll::Ready(Ok(n))) = unsafe { self.0.take(&kind, Waker::noop()) } {
                let _ = self.1.send(out[..n as usize].to_vec());
            }
        }
    }

    /// `finish` wakes the readers waiting for an abandoned read; it must not hold the salvage's
    /// lock while it does, or a reader that reads inside its wake deadlocks.
    #[test]
    fn a_reader_woken_by_finish_may_read_at_once() {
        let (got, received) = mpsc::channel();
        let finisher = std::thread::spawn(move || {
            let salvage = Arc::new(Salvage::default());
            let mut abandoned_buf = *b"late";
            let abandoned = OpKind::Recv {
                buf: abandoned_buf.as_mut_ptr(),
                len: 4,
            };
            salvage.begin(&abandoned);
            let waker = Waker::from(Arc::new(ReadsOnWake(salvage.clone(), got)));
            let mut next_buf = [0u8; 8];
            let next = OpKind::Recv {
                buf: next_buf.as_mut_ptr(),
                len: 8,
            };
            // SAFETY: `next_buf` is valid for 8 bytes of writes.
            let waiting = unsafe { salvage.take(&next, &waker) };
            assert!(
                matches!(waiting, Some(Poll::Pending)),
                "waits for the abandoned read"
            );
            // SAFETY: the "kernel" wrote the 4 bytes of `abandoned_buf`, alive here.
            unsafe { salvage.finish(&abandoned, 4) };
        });
        let bytes = received
            .recv_timeout(Duration::from_secs(10))
            .expect("finish deadlocked waking a reader");
        assert_eq!(bytes, b"late");
        finisher.join().expect("finisher");
    }

    /// A message header over `buf`, with room for a name and `control`; all of it lives in the
    /// returned box.
    struct Header {
        msg: libc::msghdr,
        iov: libc::iovec,
        name: libc::sockaddr_storage,
        control: [u64; 4],
    }

    fn header(buf: &mut [u8], control_len: usize) -> Box<Header> {
        // SAFETY: all-zero is a valid msghdr, iovec, sockaddr_storage and control buffer.
        let mut h: Box<Header> = Box::new(unsafe { std::mem::zeroed() });
        h.iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        h.msg.msg_iov = &mut h.iov;
        h.msg.msg_iovlen = 1;
        h.msg.msg_name = (&mut h.name as *mut libc::sockaddr_storage).cast();
        h.msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
        h.msg.msg_control = h.control.as_mut_ptr().cast();
        h.msg.msg_controllen = control_len as _;
        h
    }

    /// A dropped stream message receive's bytes are kept whole and handed out in order across
    /// smaller receives, its control data (here a 16-byte one naming no fd) with the first; a
    /// dropped datagram receive's datagram is handed out whole, truncated to a smaller room
    /// with `MSG_TRUNC` and its whole length.
    #[test]
    fn kept_messages_come_back_in_order_and_whole() {
        let salvage = Salvage::default();
        let mut first = *b"0123456789";
        // The "kernel" received 10 bytes and 16 bytes of control data.
        let mut h = header(&mut first, 16);
        let stream = OpKind::RecvMessage {
            msg: &mut h.msg,
            flags: 0,
        };
        salvage.begin(&stream);
        // SAFETY: `first` and `h` are alive and "written".
        unsafe { salvage.finish(&stream, 10) };
        let take = |room: usize, flags: i32| {
            let mut out = vec![0u8; room];
            let mut h = header(&mut out, 32);
            let kind = OpKind::RecvMessage {
                msg: &mut h.msg,
                flags,
            };
            // SAFETY: the header and what it points to are alive for the call.
            let got = unsafe { salvage.take(&kind, Waker::noop()) };
            let Some(Poll::Ready(Ok(n))) = got else {
                panic!("nothing kept: {got:?}")
            };
            let (controllen, msg_flags) = (h.msg.msg_controllen, h.msg.msg_flags);
            drop(h);
            (
                out[..(n as usize).min(room)].to_vec(),
                n,
                controllen,
                msg_flags,
            )
        };
        assert_eq!(take(4, 0), (b"0123".to_vec(), 4, 16, 0));
        assert_eq!(take(16, 0), (b"456789".to_vec(), 6, 0, 0));

        let mut datagram = *b"abcdef";
        let mut h = header(&mut datagram, 0);
        let kind = OpKind::RecvMessage {
            msg: &mut h.msg,
            flags: libc::MSG_TRUNC,
        };
        salvage.begin(&kind);
        // SAFETY: as above.
        unsafe { salvage.finish(&kind, 6) };
        assert_eq!(
            take(4, libc::MSG_TRUNC),
            (b"abcd".to_vec(), 6, 0, libc::MSG_TRUNC)
        );
        assert!(!salvage.holds(), "everything kept was taken");
    }
}
