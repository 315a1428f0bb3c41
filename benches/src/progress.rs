//! A one-line progress bar on stderr: how far a long run is, and how long it has left.

use std::io::Write;
use std::time::{Duration, Instant};

/// Counts steps of known total cost (in seconds of measuring) and redraws the bar.
#[derive(Debug)]
pub struct Progress {
    total: Duration,
    done: Duration,
    started: Instant,
}

impl Progress {
    /// A bar for `total` of expected work.
    pub fn new(total: Duration) -> Self {
        Progress {
            total,
            done: Duration::ZERO,
            started: Instant::now(),
        }
    }

    /// Shows that a step labelled `what` starts.
    pub fn start(&self, what: &str) {
        const WIDTH: usize = 30;
        let frac = (self.done.as_secs_f64() / self.total.as_secs_f64().max(1e-9)).min(1.0);
        let filled = (frac * WIDTH as f64).round() as usize;
        let elapsed = self.started.elapsed().as_secs_f64();
        let left = if self.done.is_zero() {
            (self.total - self.done).as_secs_f64()
        } else {
            elapsed / frac - elapsed
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K[{}{}] {:>3.0}%  {:>3}m{:02}s left  {what}",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            frac * 100.0,
            (left / 60.0) as u64,
            (left % 60.0) as u64,
        );
        let _ = err.flush();
    }

    /// Records a finished step of cost `cost`.
    pub fn finish(&mut self, cost: Duration) {
        self.done += cost;
    }

    /// Clears the bar's line.
    pub fn clear(&self) {
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
    }
}
