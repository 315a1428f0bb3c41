//! A UDP echo server: each datagram, up to 65,507 bytes, back to its sender whole.
//!
//! ```text
//! cargo run --release --example udp_echo -- --addr 127.0.0.1:7001 --backend uring
//! ```
//!
//! Takes the common flags (`--addr`, `--backend`, `--reactors` with one `SO_REUSEPORT` socket
//! each, `--pool`, `--offload`, `--work-us`, `--wake`, `--stats`). The first line on stdout is
//! `listening on <ip:port> (backend: <uring|epoll>)`; SIGINT or SIGTERM stops it.

fn main() {
    let args =
        examples::server::parse_or_exit("udp_echo", std::env::args().skip(1).collect(), 7001);
    examples::server::exit_on_error(
        examples::server::builder(&args).block_on(examples::udp_echo::serve(&args)),
    );
}
