//! axum on this runtime: a `Router` with a JSON route and a path parameter, served through
//! `runtime::compat` (HTTP/1.1 and HTTP/2, or TLS with `--tls CERT KEY`).
//!
//! ```text
//! cargo run --release --example axum -- --addr 127.0.0.1:8080 --backend epoll
//! curl http://127.0.0.1:8080/users/42
//! ```
//!
//! Takes the common flags (`--addr`, `--backend`, `--reactors`, `--pool`, `--wake`,
//! `--stats`); SIGINT or SIGTERM shuts it down gracefully.

use hyper_util::service::TowerToHyperService;

fn main() {
    let args = examples::hyper_app::cli_args("axum");
    let (args, tls) = examples::hyper_app::take_tls_flag(args).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let app = examples::axum_app::router();
    examples::server::run("axum", 8080, args, move |_, draining| {
        move |stream| {
            let service = TowerToHyperService::new(app.clone());
            examples::hyper_app::serve_connection(stream, tls.clone(), service, draining.clone())
        }
    });
}
