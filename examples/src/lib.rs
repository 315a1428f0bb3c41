//! The example servers' code, shared by their binaries (`echo`, `http`, `kv`, `hyper`, `axum`,
//! `udp_echo`, `unix_echo`) and by the benchmark harness, so that what is measured is exactly what the examples run.

pub mod axum_app;
pub mod echo;
pub mod http;
pub mod hyper_app;
pub mod kv;
pub mod requests;
pub mod resp;
pub mod server;
pub mod udp_echo;
pub mod unix_echo;

use std::time::{Duration, Instant};

/// Where a handler computes and writes its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the reactor that owns the connection.
    Inline,
    /// On a worker pool thread: the request is read on the reactor, the reply computed and
    /// written by the pool (the cross-thread handoff path).
    Offload,
}

/// How a handler treats each request: where it answers, and how much CPU work it does first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handling {
    /// Where the reply is computed and written.
    pub placement: Placement,
    /// CPU time spent on each read before answering (a stand-in for real request work).
    pub work: Duration,
}

impl From<Placement> for Handling {
    fn from(placement: Placement) -> Self {
        Handling {
            placement,
            work: Duration::ZERO,
        }
    }
}

impl Handling {
    /// Spends `self.work` of CPU time on the calling thread.
    pub fn do_work(&self) {
        busy_work(self.work);
    }
}

/// Spends `work` of CPU time on the calling thread (a busy loop, not a sleep).
pub fn busy_work(work: Duration) {
    if work.is_zero() {
        return;
    }
    let end = Instant::now() + work;
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}
