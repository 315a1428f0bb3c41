//! Operations submitted for a reactor by another thread (the handoff path).
//!
//! A foreign thread cannot touch the reactor's op table, so a handed-over operation carries its
//! own completion cell: an `Arc<RemoteOp>` whose pointer, tagged with [`REMOTE_TAG`], is the
//! SQE's user data. The SQE holds one strong count from the moment it is queued until its CQE is
//! reaped; the future holds another while it waits.

use std::sync::Arc;
use std::task::Waker;

use parking_lot::Mutex;

use crate::salvage::Abandoned;

/// Set in the user data of remote operations. User-space pointers never have bit 63 set, and the
/// driver's own reserved user data values are checked before this tag.
pub(crate) const REMOTE_TAG: u64 = 1 << 63;

/// Whether `user_data` names a handed-over operation (not one of the driver's reserved values).
pub(crate) fn is_remote(user_data: u64) -> bool {
    user_data & REMOTE_TAG != 0 && user_data < crate::driver::FIRST_RESERVED_USER_DATA
}

enum RemoteState {
    Waiting(Waker),
    Done(i32),
    /// The future is gone; the memory the kernel may use waits here for the CQE.
    Abandoned(Abandoned),
}

/// The completion cell of one handed-over operation.
pub(crate) struct RemoteOp {
    state: Mutex<RemoteState>,
}

impl RemoteOp {
    pub(crate) fn new(waker: Waker) -> Arc<Self> {
        Arc::new(RemoteOp {
            state: Mutex::new(RemoteState::Waiting(waker)),
        })
    }

    /// The user data naming this operation, without giving up a count (for cancels).
    pub(crate) fn user_data(self: &Arc<Self>) -> u64 {
        Arc::as_ptr(self) as u64 | REMOTE_TAG
    }

    /// The user data for its SQE, which owns one strong count until [`Self::from_user_data`].
    pub(crate) fn into_user_data(self: Arc<Self>) -> u64 {
        Arc::into_raw(self) as u64 | REMOTE_TAG
    }

    /// Takes back the count an SQE held.
    ///
    /// # Safety
    /// `user_data` must come from [`Self::into_user_data`] and be taken back only once.
    pub(crate) unsafe fn from_user_data(user_data: u64) -> Arc<Self> {
        // SAFETY: the caller passes a value made by `into_user_data`, once.
        unsafe { Arc::from_raw((user_data & !REMOTE_TAG) as *const RemoteOp) }
    }

    /// Records the result (a CQE, or a cancellation before submission) and wakes the waiter.
    pub(crate) fn complete(&self, result: i32) {
        let prev = std::mem::replace(&mut *self.state.lock(), RemoteState::Done(result));
        match prev {
            RemoteState::Waiting(w) => w.wake(),
            RemoteState::Abandoned(abandoned) => abandoned.finish(result),
            RemoteState::Done(_) => {}
        }
    }

    /// Completes the operation of a handed-over SQE that will never reach the kernel (its
    /// reactor is gone). Cancels and other SQEs without a cell are just dropped.
    pub(crate) fn fail_unsubmitted(entry: &io_uring::squeue::Entry) {
        let ud = entry.get_user_data();
        if is_remote(ud) {
            // SAFETY: a remote op's SQE holds the count made by `into_user_data`, and this one
            // is being discarded unsubmitted, so the count is taken back exactly once.
            unsafe { RemoteOp::from_user_data(ud) }.complete(-libc::ECANCELED);
        }
    }

    /// The result if there is one, else leaves `waker` to be woken with it.
    pub(crate) fn poll(&self, waker: &Waker) -> Option<i32> {
        let mut state = self.state.lock();
        match &mut *state {
            RemoteState::Done(res) => Some(*res),
            RemoteState::Waiting(w) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                None
            }
            RemoteState::Abandoned(_) => unreachable!("polled after it was dropped"),
        }
    }

    /// The future is gone: keep `abandoned` until the CQE. Returns `true` if the operation was
    /// still in flight (the caller should cancel it).
    pub(crate) fn abandon(&self, abandoned: Abandoned) -> bool {
        let mut state = self.state.lock();
        if let RemoteState::Done(res) = *state {
            drop(state);
            abandoned.finish(res);
            return false;
        }
        *state = RemoteState::Abandoned(abandoned);
        true
    }
}
