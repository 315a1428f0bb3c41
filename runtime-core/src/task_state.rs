//! The protocol between a task's poll and the threads that wake or abort it: two flags, one
//! saying the task is queued, the other that its handle asked it to stop.
//!
//! A waker that finds the task not queued queues it; one that finds it queued does nothing,
//! because the poll it is queued for is still to come. That poll clears the queued flag first,
//! then reads what it acts on (the abort flag, and whatever the future checks). No news is
//! lost:
//!
//! * The poll clears the flag with a swap, a read-modify-write. If the waker's swap (or the
//!   abort's, which follows its store to the abort flag) comes after it in the flag's
//!   modification order, the waker reads the cleared flag and queues the task again.
//! * Otherwise the waker's swap came first, and the poll's swap reads it: the release of the
//!   one and the acquire of the other order everything the waker wrote before it (the abort
//!   flag, the value it woke the task for) before everything the poll reads after.
//!
//! A plain store to clear the flag would not do: a store may become visible after the loads
//! that follow it (store buffering), so that the poll reads no abort while the aborting thread
//! still reads the flag set, and neither acts. `tests/loom_task.rs` checks both.

#[cfg(loom)]
use loom::sync::atomic::{AtomicBool, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether a task is queued, and whether it was aborted.
#[derive(Debug)]
pub struct TaskState {
    queued: AtomicBool,
    aborted: AtomicBool,
}

impl TaskState {
    /// The state of a task that counts as queued: it runs without a wake, and a wake before
    /// that run queues nothing.
    pub fn queued() -> Self {
        TaskState {
            queued: AtomicBool::new(true),
            aborted: AtomicBool::new(false),
        }
    }

    /// A wake: whether the caller must queue the task.
    pub fn wake(&self) -> bool {
        !self.queued.swap(true, Ordering::AcqRel)
    }

    /// An abort: records it, then wakes; whether the caller must queue the task.
    pub fn abort(&self) -> bool {
        self.aborted.store(true, Ordering::Release);
        self.wake()
    }

    /// The start of a poll, which the task's queue entry is consumed by: from here a wake
    /// queues it again. Whether it was aborted.
    pub fn begin_poll(&self) -> bool {
        self.queued.swap(false, Ordering::AcqRel);
        self.aborted.load(Ordering::Acquire)
    }
}

/// A task that is nothing but its state (a blocking job on the pool): an abort only marks it.
impl crate::join::Abortable for TaskState {
    fn wake_to_abort(self: std::sync::Arc<Self>) {
        self.abort();
    }
}
