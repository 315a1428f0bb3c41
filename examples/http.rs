//! An HTTP/1.1 plaintext server: "Hello, World!" to every request, keep-alive and pipelining;
//! a malformed request gets a 400 and the connection is closed.
//!
//! ```text
//! cargo run --release --example http -- --addr 127.0.0.1:8080 --backend uring
//! ```
//!
//! Takes the same flags as `echo` (see its documentation).

fn main() {
    examples::server::main("http", 8080, |handling, _| {
        move |stream| examples::http::serve(stream, handling)
    });
}
