//! A Unix stream echo server.
//!
//! ```text
//! cargo run --release --example unix_echo -- --path /tmp/echo.sock --backend uring
//! ```
//!
//! Takes the common flags with `--path PATH` (default `unix_echo.sock` in the temporary
//! directory; a leading NUL byte names the abstract namespace) instead of `--addr`. The first
//! line on stdout is `listening on <PATH> (backend: <uring|epoll>)`; SIGINT or SIGTERM stops
//! it and removes the socket file.

fn main() {
    let (path, args) = examples::unix_echo::parse(std::env::args().skip(1).collect())
        .unwrap_or_else(|e| {
            eprintln!("{e}\nusage: {}", examples::unix_echo::usage());
            std::process::exit(2);
        });
    examples::server::exit_on_error(
        examples::server::builder(&args).block_on(examples::unix_echo::serve(&path, &args)),
    );
}
