//! The table of operations in flight, each with an explicit lifecycle.

use std::task::Waker;

use slab::Slab;

use crate::salvage::Abandoned;

/// Where one operation is in its life.
pub(crate) enum Lifecycle {
    /// Submitted (or queued for submission); its future waits with this waker.
    Waiting(Waker),
    /// Its future was dropped before the CQE: the memory the kernel may still use is kept here
    /// until the CQE arrives, and what the kernel produced goes to the socket's salvage.
    Ignored(Abandoned),
    /// The CQE arrived with this result; the future has not seen it yet.
    Completed(i32),
}

/// Operations by user data (the slab key).
#[derive(Default)]
pub(crate) struct OpTable {
    ops: Slab<Lifecycle>,
}

impl OpTable {
    /// Starts an operation waiting with `waker`; returns its user data.
    pub(crate) fn insert(&mut self, waker: Waker) -> usize {
        self.ops.insert(Lifecycle::Waiting(waker))
    }

    /// Records a CQE's result for `key`.
    pub(crate) fn complete(&mut self, key: usize, result: i32) {
        let Some(op) = self.ops.get_mut(key) else {
            return;
        };
        match std::mem::replace(op, Lifecycle::Completed(result)) {
            Lifecycle::Waiting(waker) => waker.wake(),
            Lifecycle::Ignored(abandoned) => {
                self.ops.remove(key);
                abandoned.finish(result);
            }
            Lifecycle::Completed(_) => unreachable!("two CQEs for a one-shot operation"),
        }
    }

    /// Polls `key`: its result if completed (and forgets it), or parks `waker`.
    pub(crate) fn poll(&mut self, key: usize, waker: &Waker) -> Option<i32> {
        match self.ops.get_mut(key) {
            Some(Lifecycle::Completed(res)) => {
                let res = *res;
                self.ops.remove(key);
                Some(res)
            }
            Some(Lifecycle::Waiting(w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                None
            }
            Some(Lifecycle::Ignored(_)) | None => {
                unreachable!("an operation was polled after it was dropped")
            }
        }
    }

    /// The future of `key` is gone. Returns `true` if the kernel still owns the operation (the
    /// caller should cancel it); `abandoned` then waits here for the CQE.
    pub(crate) fn abandon(&mut self, key: usize, abandoned: Abandoned) -> bool {
        match self.ops.get_mut(key) {
            Some(Lifecycle::Completed(res)) => {
                let res = *res;
                self.ops.remove(key);
                abandoned.finish(res);
                false
            }
            Some(op) => {
                *op = Lifecycle::Ignored(abandoned);
                true
            }
            None => {
                abandoned.finish(-libc::ECANCELED);
                false
            }
        }
    }

    /// Keys of every operation the kernel still owns.
    pub(crate) fn in_flight(&self) -> Vec<usize> {
        self.ops
            .iter()
            .filter(|(_, op)| !matches!(op, Lifecycle::Completed(_)))
            .map(|(key, _)| key)
            .collect()
    }

    /// Forgets every kept buffer without freeing it: used only when the kernel cannot be made
    /// to let go, so that it never writes into freed memory.
    pub(crate) fn leak_all(&mut self) {
        for op in self.ops.drain() {
            if let Lifecycle::Ignored(abandoned) = op {
                std::mem::forget(abandoned);
            }
        }
    }
}
