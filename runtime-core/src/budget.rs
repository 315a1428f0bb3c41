//! The latency budget, as a driver applies it inside its park: a blocking wait that brought
//! little work is extended until the budget has passed since it began, so that one wakeup
//! serves several requests (CPU bought with latency). The kernel does this itself where it can
//! (io_uring's `min_wait`); elsewhere the driver naps and then collects what came.

use std::io;
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

    /// A driver's wait of at most `timeout`, under `budget` if any: `wait` waits and handles
    /// what came, returning how many events; a blocking wait that brought little is followed by
    /// the [`nap`](LatencyBudget::nap) and by a `wait` that does not block, for what came
    /// meanwhile.
    pub fn park(
        budget: Option<Self>,
        timeout: Option<Duration>,
        mut wait: impl FnMut(Option<Duration>) -> io::Result<usize>,
    ) -> io::Result<()> {
        let began = budget.map(|_| Instant::now());
        let events = wait(timeout)?;
        if let (Some(budget), Some(began)) = (budget, began) {
            if timeout != Some(Duration::ZERO) && budget.nap(began, events, timeout) {
                wait(Some(Duration::ZERO))?;
            }
        }
        Ok(())
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
