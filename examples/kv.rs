//! A small in-memory key-value server speaking RESP (the redis protocol): PING, ECHO, GET,
//! SET, DEL, INCR, MGET, with pipelining. `redis-benchmark` and `redis-cli` can drive it.
//!
//! ```text
//! cargo run --release --example kv -- --addr 127.0.0.1:6380 --backend uring
//! ```
//!
//! Takes the same flags as `echo` (see its documentation).

use std::sync::Arc;

use examples::kv::Store;

fn main() {
    let store = Arc::new(Store::default());
    examples::server::main("kv", 6380, move |handling, _| {
        move |stream| examples::kv::serve(stream, store.clone(), handling)
    });
}
