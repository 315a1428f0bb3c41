//! The latency budget, as a driver applies it inside its park: a blocking wait that brought
//! little work is extended until the budget has passed since it began, so that one wakeup
//! serves several requests (CPU bought with latency). The kernel does this itself where it can
//! (io_uring's `min_wait`); elsewhere the driver naps and then collects what came.

use std::time::{Duration, Instant};

/// Events (completions, ready fds) at or above which a wait is not extended by the budget.
pub const BATCH: usize = 32;

/// A reactor's latency budget (never zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyBudget(Duration);

impl LatencyBudget {
    /// The budget `budget`, or `None` for none (zero).
    pub fn new(budget: Duration) -> Option<Self> {
        (!budget.is_zero()).then_some(LatencyBudget(budget))
    }

    /// How long it is.
    pub fn duration(self) -> Duration {
        self.0
    }

    /// The nap after a blocking wait that began at `began`, had `timeout` (the next timer's
    /// deadline, or none) and brought `events`: fewer than [`BATCH`] before the budget had
    /// passed, it sleeps until then (never past `timeout`) and returns `true`, and the caller
    /// collects what came meanwhile with a wait that does not block. A wait whose first event
    /// came later than the budget (a quiet reactor) does not nap, so it adds no latency.
    pub fn nap(self, began: Instant, events: usize, timeout: Option<Duration>) -> bool {
        if events >= BATCH {
            return false;
        }
        let waited = began.elapsed();
        let mut left = self.0.saturating_sub(waited);
        if let Some(t) = timeout {
            left = left.min(t.saturating_sub(waited));
        }
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(left);
        true
    }
}
