//! The part of a ring driver that other threads reach through the sockets they hold.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use io_uring::{squeue, IoUring};
use parking_lot::Mutex;
use runtime_core::ReactorHandle;

use crate::provided::ProvidedBuffers;

/// A pointer to the reactor's ring, for threads that push SQEs themselves (`SqPoll` only).
///
/// # Invariant
/// Points to the `IoUring` of a live `RingDriver`; the driver clears it (under the same lock)
/// before the ring is dropped, and every push through it holds that lock.
pub(crate) struct RingPtr(pub(crate) *const IoUring);

// SAFETY: the pointer is only dereferenced under `RingShared::sq`'s lock, for shared access to
// the SQ, which the kernel's SQ thread and the lock holders synchronise through the SQ ring's
// head and tail (see `RingPtr`'s invariant).
unsafe impl Send for RingPtr {}

/// What the threads that hold a reactor's sockets share with it.
pub(crate) struct RingShared {
    /// Identifies the ring (a source tells its own reactor from another by it).
    pub(crate) id: usize,
    /// The ring's fd, the target of `MSG_RING` wakes.
    pub(crate) ring_fd: RawFd,
    /// SQEs handed over by other threads, pushed by the reactor on its next turn. `None` once
    /// the driver is gone.
    remote: Mutex<Option<Vec<squeue::Entry>>>,
    /// `SqPoll` only: the ring itself, pushed into directly under this lock.
    pub(crate) sq: Mutex<Option<RingPtr>>,
    /// The reactor running the ring, once entered.
    pub(crate) reactor: OnceLock<ReactorHandle>,
    remote_in_flight: AtomicUsize,
    /// The ring's provided buffers, for multishot receives (`None` where the kernel refused
    /// to register them).
    pub(crate) buffers: Option<Arc<ProvidedBuffers>>,
}

impl RingShared {
    pub(crate) fn new(id: usize, ring_fd: RawFd, buffers: Option<Arc<ProvidedBuffers>>) -> Self {
        RingShared {
            id,
            ring_fd,
            remote: Mutex::new(Some(Vec::new())),
            sq: Mutex::new(None),
            reactor: OnceLock::new(),
            remote_in_flight: AtomicUsize::new(0),
            buffers,
        }
    }

    /// Hands an SQE to the reactor and wakes it as its strategy says; gives it back if the
    /// reactor is gone.
    pub(crate) fn hand_over(&self, entry: squeue::Entry) -> Result<(), squeue::Entry> {
        match &mut *self.remote.lock() {
            Some(queue) => queue.push(entry),
            None => return Err(entry),
        }
        if let Some(reactor) = self.reactor.get() {
            reactor.notify();
        }
        Ok(())
    }

    /// Counts a handed-over operation's SQE, until its CQE (or its cancellation unsubmitted).
    pub(crate) fn count_remote_submitted(&self) {
        self.remote_in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a handed-over operation done.
    pub(crate) fn count_remote_done(&self) {
        self.remote_in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Handed-over operations not done yet.
    pub(crate) fn remote_in_flight(&self) -> usize {
        self.remote_in_flight.load(Ordering::Acquire)
    }

    /// The SQEs handed over since the last call.
    pub(crate) fn take_remote(&self) -> Vec<squeue::Entry> {
        self.remote
            .lock()
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Refuses further handovers; returns what was queued and never pushed.
    pub(crate) fn close(&self) -> Vec<squeue::Entry> {
        *self.sq.lock() = None;
        self.remote.lock().take().unwrap_or_default()
    }

    /// `SqPoll`: pushes `entry` straight into the ring and wakes the SQ thread if it sleeps.
    /// Returns the entry back if there is no room (or no SQPOLL ring): hand it over instead.
    pub(crate) fn push_direct(&self, entry: squeue::Entry) -> Result<(), squeue::Entry> {
        let guard = self.sq.lock();
        let Some(ptr) = guard.as_ref() else {
            return Err(entry);
        };
        // SAFETY: `RingPtr`'s invariant: the ring is alive while the lock is held and set.
        let ring = unsafe { &*ptr.0 };
        // SAFETY: every pusher of an SQPOLL ring holds `sq`, so this is the only SQ writer.
        let mut sq = unsafe { ring.submission_shared() };
        // SAFETY: the SQE's memory is owned by a future or a `RemoteOp` until its CQE.
        if unsafe { sq.push(&entry) }.is_err() {
            return Err(entry);
        }
        sq.sync();
        let need_wakeup = sq.need_wakeup();
        drop(sq);
        if need_wakeup {
            // Wakes the SQ thread (`IORING_ENTER_SQ_WAKEUP`); any thread may do this.
            let _ = ring.submitter().submit();
            if let Some(r) = self.reactor.get() {
                r.metrics().wakes_written.add(1);
            }
        } else if let Some(r) = self.reactor.get() {
            r.metrics().wakes_suppressed.add(1);
        }
        if let Some(r) = self.reactor.get() {
            r.metrics().handoffs.add(1);
        }
        Ok(())
    }
}
