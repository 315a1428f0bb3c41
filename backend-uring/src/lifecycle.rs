//! The life of one submitted operation, the same whether it waits in the op table (started on
//! its reactor) or in a handoff cell (started, or finished, on another thread).

use std::sync::Arc;
use std::task::Waker;

use crate::handoff::HandoffOp;
use crate::salvage::Abandoned;

/// Where one operation is in its life.
pub(crate) enum Lifecycle {
    /// In flight (or queued for submission); its future waits with this waker.
    Waiting(Waker),
    /// Its future was dropped before the CQE: the memory the kernel may still use is kept here
    /// until the CQE arrives, and what the kernel produced goes to the socket's salvage.
    Abandoned(Box<Abandoned>),
    /// The CQE arrived with this result; the future has not seen it yet.
    Completed(i32),
}

/// Work left for after the lock or borrow on a lifecycle is released: waking a waker, dropping
/// one, or freeing an abandoned operation's memory may run arbitrary code (drop a task, and with
/// it a socket whose drop reaches the same table), so none of it runs under the lock.
#[must_use = "deferred work must be run"]
pub(crate) enum Deferred {
    Nothing,
    Wake(Waker),
    Drop(Waker),
    Finish(Box<Abandoned>, i32),
    /// A migrated operation's result, for its cell.
    Complete(Arc<HandoffOp>, i32),
}

impl Deferred {
    pub(crate) fn run(self) {
        match self {
            Deferred::Nothing => {}
            Deferred::Wake(waker) => waker.wake(),
            Deferred::Drop(waker) => drop(waker),
            Deferred::Finish(abandoned, result) => (*abandoned).finish(result),
            Deferred::Complete(cell, result) => cell.complete(result).run(),
        }
    }
}

impl Lifecycle {
    /// The CQE arrived with `result`. Returns what to run after unlocking, and whether the
    /// operation is over (nobody will poll it: it was abandoned).
    pub(crate) fn complete(&mut self, result: i32) -> (Deferred, bool) {
        match std::mem::replace(self, Lifecycle::Completed(result)) {
            Lifecycle::Waiting(waker) => (Deferred::Wake(waker), false),
            Lifecycle::Abandoned(abandoned) => (Deferred::Finish(abandoned, result), true),
            Lifecycle::Completed(first) => {
                debug_assert!(false, "two CQEs for a one-shot operation");
                *self = Lifecycle::Completed(first);
                (Deferred::Nothing, false)
            }
        }
    }

    /// Polled by its future: the result if it came (the operation is then over), else `waker`
    /// is kept to be woken with it. Returns also a replaced waker to drop after unlocking.
    pub(crate) fn poll(&mut self, waker: &Waker) -> (Option<i32>, Deferred) {
        match self {
            Lifecycle::Completed(res) => (Some(*res), Deferred::Nothing),
            Lifecycle::Waiting(w) if w.will_wake(waker) => (None, Deferred::Nothing),
            Lifecycle::Waiting(w) => {
                let old = std::mem::replace(w, waker.clone());
                (None, Deferred::Drop(old))
            }
            Lifecycle::Abandoned(_) => unreachable!("an operation was polled after it was dropped"),
        }
    }

    /// Its future is gone; `abandoned` owns the operation's memory. Returns what to run after
    /// unlocking (the replaced waker's drop, or the freeing of the memory if the result had
    /// come), and whether the kernel still has the operation (the caller should cancel it;
    /// otherwise the operation is over).
    pub(crate) fn abandon(&mut self, abandoned: Box<Abandoned>) -> (Deferred, bool) {
        if let Lifecycle::Completed(res) = *self {
            return (Deferred::Finish(abandoned, res), false);
        }
        match std::mem::replace(self, Lifecycle::Abandoned(abandoned)) {
            // The waker may hold the last count of a task: dropped by the caller, unlocked.
            Lifecycle::Waiting(waker) => (Deferred::Drop(waker), true),
            Lifecycle::Abandoned(_) | Lifecycle::Completed(_) => {
                unreachable!("an operation was dropped twice")
            }
        }
    }

    /// Whether the kernel is done with the operation.
    pub(crate) fn is_completed(&self) -> bool {
        matches!(self, Lifecycle::Completed(_))
    }
}
