//! The load-benchmark harness.
//!
//! `compare` runs each server in its own process pinned to one core, drives it from a load
//! client pinned to another, and reads the server's CPU time from the kernel's per-thread
//! scheduler statistics. See `docs/benchmarks.md` for how to read the results.

mod churn;
pub mod cpu;
mod datagrams;
pub mod load;
pub mod machine;
pub mod progress;
pub mod report;
pub mod servers;
pub mod svg;
pub mod syscalls;
pub mod wake_latency;
pub mod writer;
