//! hyper 1.x on this runtime: HTTP/1.1 and HTTP/2 (h2c, by prior knowledge or upgrade-free
//! detection) with hyper-util's auto builder, or both over TLS with `--tls CERT KEY` (ALPN h2
//! and http/1.1). `GET /` answers `Hello, World!`; `/echo` streams the request body back.
//!
//! ```text
//! cargo run --release --example hyper -- --addr 127.0.0.1:8080 --backend uring
//! curl http://127.0.0.1:8080/
//! curl --http2-prior-knowledge --data-binary @Cargo.toml http://127.0.0.1:8080/echo
//! ```
//!
//! Takes the common flags (`--addr`, `--backend`, `--reactors`, `--pool`, `--wake`,
//! `--stats`); SIGINT or SIGTERM shuts it down gracefully.

use hyper::service::service_fn;

fn main() {
    let args = examples::hyper_app::cli_args("hyper");
    let (args, tls) = examples::hyper_app::take_tls_flag(args).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    examples::server::run("hyper", 8080, args, move |_, draining| {
        move |stream| {
            let service = service_fn(examples::hyper_app::route);
            examples::hyper_app::serve_connection(stream, tls.clone(), service, draining.clone())
        }
    });
}
