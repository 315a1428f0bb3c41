//! The part of a ring driver that other threads reach through the sockets they hold.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use io_uring::{squeue, IoUring};
use parking_lot::Mutex;
use runtime_core::ReactorHandle;

use crate::handoff::Handoff;
use crate::multishot::Load;
use crate::provided::BufferRings;
use crate::setup::RingWake;

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
    /// What other threads handed off, handled by the reactor on its next turn, in order. `None`
    /// once the driver is gone.
    handoffs: Mutex<Option<Vec<Handoff>>>,
    /// `SqPoll` only: the ring itself, pushed into directly under this lock.
    pub(crate) sq: Mutex<Option<RingPtr>>,
    /// The reactor running the ring, once entered.
    pub(crate) reactor: OnceLock<ReactorHandle>,
    /// Handed-off operations whose cell has not completed.
    handoffs_in_flight: AtomicUsize,
    /// Set when the driver was dropped with nothing left in the kernel: only then may a refused
    /// handoff give memory back.
    drained: AtomicBool,
    /// The ring's provided buffers, for multishot receives (`None` where the kernel refused
    /// to register them).
    pub(crate) buffers: Option<Arc<BufferRings>>,
    /// How busy the reactor is, for its sockets' late receives.
    pub(crate) load: Load,
    /// How operations of other threads reach the ring.
    pub(crate) wake: RingWake,
}

impl RingShared {
    pub(crate) fn new(
        id: usize,
        ring_fd: RawFd,
        buffers: Option<Arc<BufferRings>>,
        load: Load,
        wake: RingWake,
    ) -> Self {
        RingShared {
            id,
            ring_fd,
            handoffs: Mutex::new(Some(Vec::new())),
            sq: Mutex::new(None),
            reactor: OnceLock::new(),
            handoffs_in_flight: AtomicUsize::new(0),
            drained: AtomicBool::new(false),
            buffers,
            load,
            wake,
        }
    }

    /// Hands `handoff` to the reactor and wakes it as its strategy says. Under `SqPoll` an SQE
    /// goes straight into the ring when nothing older waits. If the reactor is gone, what can
    /// be done without it is done here.
    pub(crate) fn send(&self, handoff: Handoff) {
        let mut queue = self.handoffs.lock();
        let Some(q) = queue.as_mut() else {
            drop(queue);
            return self.refuse(handoff);
        };
        let sqpoll = matches!(self.wake, RingWake::SqPoll { .. });
        let handoff = match handoff {
            Handoff::Submit(entry) if sqpoll && q.is_empty() => match self.push_direct(entry) {
                Ok(()) => return,
                Err(entry) => Handoff::Submit(entry),
            },
            other => other,
        };
        q.push(handoff);
        drop(queue);
        if let Some(reactor) = self.reactor.get() {
            reactor.notify();
        }
    }

    /// Does without the reactor what `handoff` asked of it.
    pub(crate) fn refuse(&self, handoff: Handoff) {
        if matches!(handoff, Handoff::Submit(_)) {
            self.count_handoff_done();
        }
        handoff.refused(self.drained.load(Ordering::Acquire));
    }

    /// Counts a handed-off operation's SQE, until its CQE (or its cancellation unsubmitted).
    pub(crate) fn count_handoff_submitted(&self) {
        self.handoffs_in_flight.fetch_add(1, Ordering::AcqRel);
    }

    /// Counts a handed-off operation done.
    pub(crate) fn count_handoff_done(&self) {
        self.handoffs_in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Handed-off operations not done yet.
    pub(crate) fn handoffs_in_flight(&self) -> usize {
        self.handoffs_in_flight.load(Ordering::Acquire)
    }

    /// Moves what was handed off since the last call, oldest first, to the back of `into`
    /// (the queue keeps its allocation for the next handoffs).
    pub(crate) fn take_handoffs(&self, into: &mut VecDeque<Handoff>) {
        if let Some(queue) = self.handoffs.lock().as_mut() {
            into.extend(queue.drain(..));
        }
    }

    /// Refuses further handoffs (`drained`: the kernel let go of everything); moves what was
    /// handed off and not taken yet to the back of `into`.
    pub(crate) fn close(&self, drained: bool, into: &mut VecDeque<Handoff>) {
        self.drained.store(drained, Ordering::Release);
        *self.sq.lock() = None;
        into.extend(self.handoffs.lock().take().unwrap_or_default());
    }

    /// `SqPoll`: pushes `entry` straight into the ring and wakes the SQ thread if it sleeps.
    /// Returns the entry back if there is no room (or no SQPOLL ring): queue it instead.
    fn push_direct(&self, entry: squeue::Entry) -> Result<(), squeue::Entry> {
        let guard = self.sq.lock();
        let Some(ptr) = guard.as_ref() else {
            return Err(entry);
        };
        // SAFETY: `RingPtr`'s invariant: the ring is alive while the lock is held and set.
        let ring = unsafe { &*ptr.0 };
        // SAFETY: every pusher of an SQPOLL ring holds `sq`, so this is the only SQ writer.
        let mut sq = unsafe { ring.submission_shared() };
        // SAFETY: the SQE's memory is owned by a future or a handoff cell until its CQE.
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
