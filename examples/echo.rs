//! A TCP echo server.
//!
//! ```text
//! cargo run --release --example echo -- --addr 127.0.0.1:7000 --backend uring
//! ```
//!
//! `--backend` takes `uring`, `epoll` or `auto` (the default). The first line on stdout is
//! `listening on <ip:port> (backend: <uring|epoll>)`; the server then runs until killed.

use std::io::{self, Write};
use std::net::SocketAddr;

use examples::echo;
use runtime::net::TcpListener;
use runtime::{Backend, Builder};

const USAGE: &str = "usage: echo [--addr IP:PORT] [--backend uring|epoll|auto]";

struct Args {
    addr: SocketAddr,
    backend: Backend,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:7000".parse().expect("valid default"),
        backend: Backend::Auto,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--addr" => {
                let v = value()?;
                args.addr = v.parse().map_err(|e| format!("--addr {v}: {e}"))?;
            }
            "--backend" => {
                let v = value()?;
                args.backend = v.parse().map_err(|e| format!("--backend: {e}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

async fn serve(addr: SocketAddr) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    let backend = runtime::backend().expect("inside the runtime");
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "listening on {} (backend: {})",
        listener.local_addr()?,
        backend.backend()
    )?;
    out.flush()?;
    drop(out);
    eprintln!("backend: {backend}");
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                runtime::spawn(async move {
                    if let Err(e) = echo(stream).await {
                        eprintln!("connection error: {e}");
                    }
                });
            }
            Err(e) => {
                // Out of fds or memory: back off instead of spinning, then try again.
                eprintln!("accept failed: {e}");
                runtime::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("{e}\n{USAGE}");
        std::process::exit(2);
    });
    if let Err(e) = Builder::new()
        .backend(args.backend)
        .block_on(serve(args.addr))
    {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
