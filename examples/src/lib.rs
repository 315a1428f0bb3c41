//! The example servers' code, shared by their binaries (`echo`, `http`, `kv`) and by the
//! benchmark harness, so that what is measured is exactly what the examples run.

pub mod echo;
pub mod http;
pub mod kv;
pub mod requests;
pub mod resp;
pub mod server;

/// Where a handler computes and writes its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On the reactor that owns the connection.
    Inline,
    /// On a worker pool thread: the request is read on the reactor, the reply computed and
    /// written by the pool (the cross-thread handoff path).
    Offload,
}
