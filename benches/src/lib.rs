//! The load-benchmark harness.
//!
//! `compare` runs each server in its own process pinned to one core, drives it from a load
//! client pinned to another, and reads the server's CPU time from the kernel's per-thread
//! scheduler statistics. See `docs/benchmarks.md` for how to read the results.

pub mod client;
pub mod cpu;
pub mod machine;
pub mod progress;
pub mod report;
pub mod run;
pub mod servers;
pub mod syscalls;
pub mod wake_latency;
pub mod workloads;
