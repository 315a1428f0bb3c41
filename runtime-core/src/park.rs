//! The parking protocol between a reactor and the threads that wake it.
//!
//! A foreign thread that gives a reactor work (a task to run, and later an operation to submit)
//! first pushes the work onto a queue, then calls [`ParkState::notify`]. The reactor calls
//! [`ParkState::begin_park`] before it blocks in its driver and [`ParkState::end_park`] after,
//! and [`ParkState::take_notified`] right before it drains its queues.
//!
//! Only a notify that finds the reactor `PARKED` makes the syscall that wakes it; a notify to a
//! running reactor is one atomic swap. No wakeup is lost:
//!
//! * If `notify`'s swap returns `PARKED`, it wakes the driver; the driver's wake is level
//!   (an eventfd counter), so it works even if the reactor has not reached `park` yet.
//! * Otherwise the swap came before the reactor's next `begin_park` in the state's modification
//!   order. Either that `begin_park` reads `NOTIFIED` and the reactor does not block, or a
//!   `take_notified` came in between, and the drain that follows it (which acquires the swap's
//!   release) sees the pushed work.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU8, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU8, Ordering};

const RUNNING: u8 = 0;
const NOTIFIED: u8 = 1;
const PARKED: u8 = 2;

/// Whether a reactor is running, has been notified while running, or is parked.
#[derive(Debug)]
pub struct ParkState {
    state: AtomicU8,
}

impl Default for ParkState {
    fn default() -> Self {
        ParkState {
            state: AtomicU8::new(RUNNING),
        }
    }
}

impl ParkState {
    /// Called by a waker after it queued work. Returns `true` if the caller must wake the
    /// driver (the reactor is parked, and this is the first notify since it parked).
    pub fn notify(&self) -> bool {
        self.state.swap(NOTIFIED, Ordering::AcqRel) == PARKED
    }

    /// Called by the reactor before it drains its queues: clears a pending notification.
    pub fn take_notified(&self) {
        self.state.swap(RUNNING, Ordering::AcqRel);
    }

    /// Called by the reactor before blocking. Returns `false` if work was queued since the last
    /// `take_notified`: the reactor must not block this turn.
    pub fn begin_park(&self) -> bool {
        self.state
            .compare_exchange(RUNNING, PARKED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Called by the reactor after its driver returned.
    pub fn end_park(&self) {
        self.state.swap(RUNNING, Ordering::AcqRel);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn notify_while_running_does_not_wake_and_stops_the_next_park() {
        let p = ParkState::default();
        assert!(!p.notify());
        assert!(!p.begin_park());
        // the notification is still pending until the reactor drains
        assert!(!p.begin_park());
        p.take_notified();
        assert!(p.begin_park());
    }

    #[test]
    fn only_the_first_notify_of_a_park_wakes() {
        let p = ParkState::default();
        assert!(p.begin_park());
        assert!(p.notify());
        assert!(!p.notify());
        p.end_park();
        assert!(!p.notify());
    }
}
