//! What the kernel produced for operations whose futures were dropped, kept for the next
//! operation of the same kind on the same socket.
//!
//! Dropping a `recv` whose SQE the kernel completed anyway would lose the bytes it read, and
//! dropping an `accept` would lose the connection. Instead the late result lands here: the next
//! read of the socket returns those bytes first (and waits while a dropped read may still
//! deliver, so bytes never come out of order), the next accept returns that connection. On
//! epoll a dropped operation has done nothing, so there is nothing to keep; with this, reads
//! and accepts are cancel-safe on both backends.

use std::any::Any;
use std::collections::VecDeque;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};

use parking_lot::Mutex;
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

/// An operation whose future is gone, waiting for its CQE.
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
    ) -> Self {
        let kind = *code.kind();
        salvage.begin(&kind);
        Abandoned {
            kind: KeptKind(kind),
            salvage,
            keep_alive,
        }
    }

    /// The kernel finished the operation with `result`: keep what it produced, free the memory.
    pub(crate) fn finish(self, result: i32) {
        // SAFETY: `keep_alive` is still alive here (dropped below), so `kind`'s pointers are valid
        // (`KeptKind`'s invariant) and the kernel is done writing through them.
        unsafe { self.salvage.finish(&self.kind.0, result) };
        drop(self.keep_alive);
    }
}

#[derive(Default)]
struct Kept {
    /// Abandoned reads whose CQE has not come yet.
    pending_reads: usize,
    bytes: VecDeque<u8>,
    /// Abandoned accepts whose CQE has not come yet.
    pending_accepts: usize,
    accepted: VecDeque<(OwnedFd, libc::sockaddr_storage, libc::socklen_t)>,
    waiters: Vec<Waker>,
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

pub(crate) fn is_read(kind: &OpKind) -> bool {
    matches!(kind, OpKind::Recv { .. } | OpKind::RecvMsg { .. })
}

impl Salvage {
    /// Whether anything is kept, or an abandoned read or accept may still bring something.
    pub(crate) fn holds(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    fn update_active(&self, kept: &Kept) {
        let active = kept.pending_reads > 0
            || !kept.bytes.is_empty()
            || kept.pending_accepts > 0
            || !kept.accepted.is_empty();
        self.active.store(active, Ordering::Release);
    }

    fn begin(&self, kind: &OpKind) {
        let mut kept = self.kept.lock();
        match kind {
            k if is_read(k) => kept.pending_reads += 1,
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
            OpKind::Recv { buf, .. } => {
                kept.pending_reads -= 1;
                if result > 0 {
                    // SAFETY: the kernel wrote `result` bytes at `buf` (the caller's promise).
                    let data = unsafe { std::slice::from_raw_parts(buf, result as usize) };
                    kept.bytes.extend(data);
                }
            }
            OpKind::RecvMsg { msg } => {
                kept.pending_reads -= 1;
                let mut left = result.max(0) as usize;
                // SAFETY: `msg` and its iovecs are valid (the caller's promise).
                let iovecs = unsafe { iovecs(msg) };
                for iov in iovecs {
                    let n = left.min(iov.iov_len);
                    // SAFETY: the kernel filled the iovecs in order, `n` bytes of this one.
                    let data = unsafe { std::slice::from_raw_parts(iov.iov_base as *const u8, n) };
                    kept.bytes.extend(data);
                    left -= n;
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
            // A message's name and control data belong to its bytes: a dropped one is not
            // kept for a later read (a datagram's loss, which UDP allows; its fds are closed).
            OpKind::RecvMessage { .. }
            | OpKind::Connect { .. }
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
        let res = match *kind {
            OpKind::Recv { buf, len } if !kept.bytes.is_empty() => {
                let n = (len as usize).min(kept.bytes.len());
                for (i, byte) in kept.bytes.drain(..n).enumerate() {
                    // SAFETY: `buf` is valid for `len >= n` bytes of writes (the caller's promise).
                    unsafe { buf.add(i).write(byte) };
                }
                Poll::Ready(Ok(n as u32))
            }
            OpKind::RecvMsg { msg } if !kept.bytes.is_empty() => {
                // SAFETY: `msg` and its iovecs are valid (the caller's promise).
                let iovecs = unsafe { iovecs(msg) };
                let mut n = 0usize;
                for iov in iovecs {
                    let take = iov.iov_len.min(kept.bytes.len());
                    for (i, byte) in kept.bytes.drain(..take).enumerate() {
                        // SAFETY: this iovec is valid for `iov_len >= take` bytes of writes.
                        unsafe { (iov.iov_base as *mut u8).add(i).write(byte) };
                    }
                    n += take;
                }
                Poll::Ready(Ok(n as u32))
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
}
