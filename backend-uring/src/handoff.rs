//! The handoff path: what other threads give a reactor, and the completion cell of an operation
//! that is not waited for on its reactor.
//!
//! A thread that is not a socket's reactor cannot touch that reactor's ring or op table. It
//! sends a [`Handoff`] instead, which the reactor handles on its next turn, in the order sent:
//! so a socket's close comes after every request queued for it, and a cancel is decided by the
//! reactor, which knows whether its target is still in flight (a stale cancel can never reach a
//! request that reused the same user data). An operation started this way, or started on the
//! reactor and then polled elsewhere, completes into a [`HandoffOp`] cell that any thread polls.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::task::Waker;

use io_uring::squeue;
use parking_lot::Mutex;

use crate::lifecycle::{Deferred, Lifecycle};
use crate::multishot::RecvQueue;
use crate::salvage::Abandoned;
use crate::user_data::UserData;

/// What another thread asks of a reactor.
pub(crate) enum Handoff {
    /// A handed-off operation's SQE; its user data holds a count of its cell.
    Submit(squeue::Entry),
    /// The operation `key` of the op table is now polled on another thread: send its result to
    /// `cell`.
    Migrate { key: usize, cell: Arc<HandoffOp> },
    /// The operation `key` of the op table was dropped on another thread.
    Abandon {
        key: usize,
        abandoned: Box<Abandoned>,
    },
    /// Cancel `cell`'s operation if the kernel still has it.
    Cancel(Arc<HandoffOp>),
    /// A socket dropped on another thread: cancel its multishot receive if armed, empty its slot
    /// in the file table if it has one, then close it.
    Release {
        fd: OwnedFd,
        received: Option<Arc<RecvQueue>>,
        slot: Option<u32>,
    },
}

impl Handoff {
    /// The reactor is gone: do without it what can be done. `drained` says whether its ring
    /// was dropped with nothing left in the kernel; if not, memory is leaked, not freed.
    pub(crate) fn refused(self, drained: bool) {
        match self {
            // Never reached the kernel.
            Handoff::Submit(entry) => HandoffOp::fail_unsubmitted(&entry),
            Handoff::Migrate { cell, .. } if drained => cell.complete(-libc::ECANCELED).run(),
            // The kernel may still write into the operation's memory: never give it back.
            Handoff::Migrate { cell, .. } => std::mem::forget(cell),
            Handoff::Abandon { abandoned, .. } if drained => (*abandoned).finish(-libc::ECANCELED),
            Handoff::Abandon { abandoned, .. } => std::mem::forget(abandoned),
            Handoff::Cancel(_) => {}
            // Nothing queued for the fd can reach a kernel any more (and the ring's file table
            // went with the ring).
            Handoff::Release { fd, .. } => drop(fd),
        }
    }
}

/// The completion cell of an operation waited for off its reactor.
pub(crate) struct HandoffOp {
    life: Mutex<Lifecycle>,
    /// The op-table key the operation was started under, if it was started on its reactor and
    /// migrated; `None` if it was handed off from the start (its SQE names the cell itself).
    key: Option<usize>,
}

impl HandoffOp {
    /// The cell of an operation handed off from the start, waited for with `waker`.
    pub(crate) fn new(waker: Waker) -> Arc<Self> {
        Arc::new(HandoffOp {
            life: Mutex::new(Lifecycle::Waiting(waker)),
            key: None,
        })
    }

    /// The cell of the op-table operation `key`, now waited for with `waker`.
    pub(crate) fn migrated(key: usize, waker: Waker) -> Arc<Self> {
        Arc::new(HandoffOp {
            life: Mutex::new(Lifecycle::Waiting(waker)),
            key: Some(key),
        })
    }

    /// The op-table key it migrated from, if any.
    pub(crate) fn key(&self) -> Option<usize> {
        self.key
    }

    /// The user data naming its SQE, without giving up a count (for cancels).
    pub(crate) fn user_data(self: &Arc<Self>) -> u64 {
        match self.key {
            Some(key) => UserData::Op(key).encode(),
            None => UserData::Handoff(Arc::as_ptr(self) as usize).encode(),
        }
    }

    /// The user data for its SQE, which owns one count until [`Self::from_user_data`].
    pub(crate) fn into_user_data(self: Arc<Self>) -> u64 {
        debug_assert!(self.key.is_none());
        UserData::Handoff(Arc::into_raw(self) as usize).encode()
    }

    /// Takes back the count an SQE held.
    ///
    /// # Safety
    /// `addr` must come from [`Self::into_user_data`] and be taken back only once.
    pub(crate) unsafe fn from_user_data(addr: usize) -> Arc<Self> {
        // SAFETY: the caller passes an address made by `into_user_data`, once.
        unsafe { Arc::from_raw(addr as *const HandoffOp) }
    }

    /// Records the result (a CQE, or a cancellation before submission). Returns the waking or
    /// the freeing to run, which the caller runs after its own locks are released.
    #[must_use = "the deferred work must be run"]
    pub(crate) fn complete(&self, result: i32) -> Deferred {
        self.life.lock().complete(result).0
    }

    /// Completes the cell of a handed-off SQE that will never reach the kernel.
    pub(crate) fn fail_unsubmitted(entry: &squeue::Entry) {
        if let UserData::Handoff(addr) = UserData::decode(entry.get_user_data()) {
            // SAFETY: a handed-off SQE holds the count made by `into_user_data`, and this one is
            // being discarded unsubmitted, so the count is taken back exactly once.
            unsafe { HandoffOp::from_user_data(addr) }
                .complete(-libc::ECANCELED)
                .run();
        }
    }

    /// The result if there is one, else leaves `waker` to be woken with it.
    pub(crate) fn poll(&self, waker: &Waker) -> Option<i32> {
        let (res, deferred) = self.life.lock().poll(waker);
        deferred.run();
        res
    }

    /// The future is gone: keep `abandoned` until the CQE. Returns `true` if the operation may
    /// still be in flight (the caller should have it cancelled).
    pub(crate) fn abandon(&self, abandoned: Box<Abandoned>) -> bool {
        let (deferred, in_flight) = self.life.lock().abandon(abandoned);
        deferred.run();
        in_flight
    }

    /// Whether the result came.
    pub(crate) fn is_completed(&self) -> bool {
        self.life.lock().is_completed()
    }
}
