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
//! | `--wake STRATEGY` | `eventfd`, `eventfd-if-parked`, `timeout:<dur>`, `sqpoll[:<idle>]`, `msg-ring`, `direct-first` |
//! | `--stats` | on SIGINT or SIGTERM, print every reactor's counters before exiting |
//!
//! The first line on stdout is `listening on <ip:port> (backend: <uring|epoll>)`; the server
//! then runs until killed.

use std::io::{self, Write};
use std::net::SocketAddr;

use examples::{echo, Placement};
use runtime::{Backend, Builder, WakeStrategy};

const USAGE: &str = "usage: echo [--addr IP:PORT] [--backend uring|epoll|auto] [--reactors N] \
[--pool N] [--offload] [--wake STRATEGY] [--stats]";

struct Args {
    addr: SocketAddr,
    backend: Backend,
    reactors: usize,
    pool: Option<usize>,
    placement: Placement,
    wake: WakeStrategy,
    stats: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:7000".parse().expect("valid default"),
        backend: Backend::Auto,
        reactors: 1,
        pool: None,
        placement: Placement::Inline,
        wake: WakeStrategy::default(),
        stats: false,
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
                args.backend = value()?.parse().map_err(|e| format!("--backend: {e}"))?
            }
            "--reactors" => {
                args.reactors = value()?.parse().map_err(|e| format!("--reactors: {e}"))?
            }
            "--pool" => args.pool = Some(value()?.parse().map_err(|e| format!("--pool: {e}"))?),
            "--wake" => args.wake = WakeStrategy::parse(&value()?)?,
            "--offload" => args.placement = Placement::Offload,
            "--stats" => args.stats = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.reactors == 0 {
        return Err("--reactors must be at least 1".into());
    }
    Ok(args)
}

/// The signals `--stats` answers.
fn stats_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
    }
    set
}

/// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts afterwards (call
/// it before the runtime starts), so that only the `sigwait` of [`print_stats_on_signal`] sees
/// them.
fn block_stats_signals() -> io::Result<()> {
    let set = stats_signals();
    // SAFETY: `set` is initialised; the old mask is not wanted.
    let res = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if res == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(res))
    }
}

/// Waits for SIGINT or SIGTERM on a thread of its own, then prints the counters of every
/// reactor and exits.
fn print_stats_on_signal(reactors: Vec<runtime::ReactorHandle>) {
    std::thread::spawn(move || {
        let set = stats_signals();
        let mut sig = 0;
        // SAFETY: `set` is initialised and `sig` is a valid out-pointer.
        unsafe { libc::sigwait(&set, &mut sig) };
        let snapshots: Vec<_> = reactors.iter().map(|r| r.metrics().snapshot()).collect();
        let mut out = io::stdout().lock();
        for (i, s) in snapshots.iter().enumerate() {
            let _ = writeln!(out, "reactor {i}: {s}");
        }
        let total = runtime::MetricsSnapshot::sum(&snapshots);
        let _ = writeln!(out, "total: {total}");
        let _ = out.flush();
        std::process::exit(0);
    });
}

async fn serve(args: &Args) -> io::Result<()> {
    let placement = args.placement;
    let bound = runtime::serve(args.addr, move |stream| async move {
        if let Err(e) = echo(stream, placement).await {
            eprintln!("connection error: {e}");
        }
    })
    .await?;
    if args.stats {
        print_stats_on_signal(runtime::reactors());
    }
    let backend = runtime::backend().expect("inside the runtime");
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {bound} (backend: {})", backend.backend())?;
    out.flush()?;
    drop(out);
    eprintln!("backend: {backend}");
    std::future::pending().await
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("{e}\n{USAGE}");
        std::process::exit(2);
    });
    if args.stats {
        if let Err(e) = block_stats_signals() {
            eprintln!("error: cannot set up --stats: {e}");
            std::process::exit(1);
        }
    }
    let mut builder = Builder::new()
        .backend(args.backend)
        .reactors(args.reactors)
        .wake(args.wake);
    if let Some(pool) = args.pool {
        builder = builder.pool_threads(pool);
    }
    if let Err(e) = builder.block_on(serve(&args)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
