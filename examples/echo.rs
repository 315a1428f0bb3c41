//! A TCP echo server.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:7000 --backend uring
//! ```
//!
//! | flag | meaning |
//! |---|---|
//! | `--addr IP:PORT` | where to listen (default 127.0.0.1:7000; port 0 picks one) |
//! | `--backend uring\|epoll\|auto` | the I/O backend (default auto) |
//! | `--reactors N` | reactor threads, each with its own `SO_REUSEPORT` listener (default 1) |
//! | `--pool N` | worker pool threads (default: one per CPU) |
//! | `--offload` | read on the reactor, compute and write the reply on a pool thread |
//! | `--work-us N` | spend N µs of CPU (a busy loop) on each read before answering (default 0) |
//! | `--wake STRATEGY` | `eventfd`, `eventfd-if-parked`, `timeout:<dur>`, `sqpoll[:<idle>]`, `msg-ring`, `direct-first` |
//! | `--latency-budget-us N` | let a reactor gather work for up to N µs per wait (`Builder::latency_budget`; default off) |
//! | `--stats` | on SIGINT or SIGTERM, print every reactor's counters before shutting down |
//!
//! The first line on stdout is `listening on <ip:port> (backend: <uring|epoll>)`; the server
//! then runs until SIGINT or SIGTERM, when it stops accepting and gives the connections in
//! flight 5 s to finish. `http` and `kv` take the same flags; `hyper` and `axum` all but
//! `--offload` and `--work-us`.

fn main() {
    examples::server::main("echo", 7000, |handling, _| {
        move |stream| examples::echo::echo(stream, handling)
    });
}
