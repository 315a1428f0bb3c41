//! Per-fd readiness records: whether an fd may be ready, and the wakers waiting until it is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

use parking_lot::Mutex;

/// Bit 0 of the state: the fd may be ready, so a syscall is worth trying.
const READY: u64 = 1;
/// Bit 1: this direction was closed (peer hung up, or an error): ready for good, since no
/// further event will come to say so again.
const CLOSED: u64 = 2;
/// The rest of the state counts readiness events.
const TICK: u64 = 4;

/// The readiness of one direction (read or write) of one fd.
///
/// The state packs an event counter with a `READY` bit. An event bumps the counter and sets
/// the bit; a syscall that answers `EAGAIN` (or reads or writes less than asked, which on a
/// stream socket means the buffer ran dry) clears the bit, but only if no event came since the
/// state the syscall started from. So a waiter either sees `READY` and tries its syscall, or
/// registers its waker and sees the state unchanged, knowing the next event will wake it.
#[derive(Debug)]
pub(crate) struct Readiness {
    state: AtomicU64,
    waiters: Mutex<Vec<Waker>>,
}

impl Default for Readiness {
    fn default() -> Self {
        // A new fd is assumed ready: the first attempt finds out.
        Readiness {
            state: AtomicU64::new(READY),
            waiters: Mutex::new(Vec::new()),
        }
    }
}

/// A snapshot of a [`Readiness`] state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(u64);

impl Snapshot {
    pub(crate) fn is_ready(self) -> bool {
        self.0 & READY != 0
    }
}

impl Readiness {
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot(self.state.load(Ordering::Acquire))
    }

    /// The fd was found not ready by a syscall that started at `seen`: clear `READY` unless an
    /// event arrived since.
    pub(crate) fn clear(&self, seen: Snapshot) {
        if seen.0 & CLOSED != 0 {
            return;
        }
        let _ = self.state.compare_exchange(
            seen.0,
            seen.0 & !READY,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// Leaves `waker` to be woken by the next event. Returns `false` if the state changed since
    /// `seen` (an event arrived): the caller must look again instead of waiting.
    pub(crate) fn wait(&self, seen: Snapshot, waker: &Waker) -> bool {
        let mut waiters = self.waiters.lock();
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push(waker.clone());
        }
        drop(waiters);
        self.snapshot() == seen
    }

    /// Records an event (the fd became ready, or `closed` for good) and moves every waiter to
    /// `woken`, for the caller to wake once it holds no lock (the waiters' list keeps its
    /// allocation).
    pub(crate) fn ready(&self, closed: bool, woken: &mut Vec<Waker>) {
        let set = if closed { READY | CLOSED } else { READY };
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some((s + TICK) | set)
            });
        woken.extend(self.waiters.lock().drain(..));
    }
}

/// Both directions of one registered fd.
#[derive(Debug, Default)]
pub(crate) struct ScheduledIo {
    pub(crate) read: Readiness,
    pub(crate) write: Readiness,
}
