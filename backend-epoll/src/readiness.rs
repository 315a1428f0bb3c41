//! Per-fd readiness records: the wakers waiting for an fd to become readable or writable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

use parking_lot::Mutex;

/// The waiters of one direction (read or write) of one fd.
///
/// `events` counts readiness events; a waiter reads it before its syscall and again after
/// registering, so an event that lands between its `EAGAIN` and its registration is not lost.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    events: AtomicU64,
    waiters: Mutex<Vec<Waker>>,
}

impl Readiness {
    /// The event count, read before attempting a syscall.
    pub(crate) fn ticket(&self) -> u64 {
        self.events.load(Ordering::Acquire)
    }

    /// Leaves `waker` to be woken by the next event. Returns `false` if an event arrived since
    /// `ticket` was read: the caller must try its syscall again instead of waiting.
    pub(crate) fn wait(&self, ticket: u64, waker: &Waker) -> bool {
        let mut waiters = self.waiters.lock();
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
        drop(waiters);
        self.events.load(Ordering::Acquire) == ticket
    }

    /// Records an event and wakes every waiter.
    pub(crate) fn wake(&self) {
        self.events.fetch_add(1, Ordering::AcqRel);
        let waiters = std::mem::take(&mut *self.waiters.lock());
        for w in waiters {
            w.wake();
        }
    }
}

/// Both directions of one registered fd.
#[derive(Debug, Default)]
pub(crate) struct ScheduledIo {
    pub(crate) read: Readiness,
    pub(crate) write: Readiness,
}
