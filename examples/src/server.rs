//! What the example servers share: their flags, their startup line, and `--stats`.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;

use runtime::net::TcpStream;
use runtime::{Backend, Builder, WakeStrategy};

use crate::{Handling, Placement};

/// The flags every example server takes.
pub const USAGE: &str = "[--addr IP:PORT] [--backend uring|epoll|auto] [--reactors N] [--pool N] \
[--offload] [--work-us N] [--wake STRATEGY] [--stats]";

/// Parsed flags.
#[derive(Debug, Clone)]
pub struct ServerArgs {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The backend asked for.
    pub backend: Backend,
    /// Reactor threads, each with its own `SO_REUSEPORT` listener.
    pub reactors: usize,
    /// Worker pool threads (`None`: one per CPU).
    pub pool: Option<usize>,
    /// Where replies are computed and written, after how much work.
    pub handling: Handling,
    /// How other threads wake a reactor.
    pub wake: WakeStrategy,
    /// Print every reactor's counters on SIGINT or SIGTERM.
    pub stats: bool,
}

impl ServerArgs {
    /// Parses `args` (without the program name); the default address is `127.0.0.1:<port>`.
    pub fn parse(args: impl IntoIterator<Item = String>, port: u16) -> Result<Self, String> {
        let mut parsed = ServerArgs {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            backend: Backend::Auto,
            reactors: 1,
            pool: None,
            handling: Placement::Inline.into(),
            wake: WakeStrategy::default(),
            stats: false,
        };
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--addr" => {
                    let v = value()?;
                    parsed.addr = v.parse().map_err(|e| format!("--addr {v}: {e}"))?;
                }
                "--backend" => {
                    parsed.backend = value()?.parse().map_err(|e| format!("--backend: {e}"))?
                }
                "--reactors" => {
                    parsed.reactors = value()?.parse().map_err(|e| format!("--reactors: {e}"))?
                }
                "--pool" => {
                    parsed.pool = Some(value()?.parse().map_err(|e| format!("--pool: {e}"))?)
                }
                "--wake" => parsed.wake = WakeStrategy::parse(&value()?)?,
                "--offload" => parsed.handling.placement = Placement::Offload,
                "--work-us" => {
                    let us = value()?.parse().map_err(|e| format!("--work-us: {e}"))?;
                    parsed.handling.work = std::time::Duration::from_micros(us);
                }
                "--stats" => parsed.stats = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if parsed.reactors == 0 {
            return Err("--reactors must be at least 1".into());
        }
        Ok(parsed)
    }
}

/// Parses the command line and serves `handler` on every reactor until killed. The first stdout
/// line is `listening on <ip:port> (backend: <uring|epoll>)`. Bad flags exit with status 2, a
/// runtime that cannot start with status 1.
pub fn main<H, Fut>(name: &str, default_port: u16, handler: impl FnOnce(Handling) -> H)
where
    H: Fn(TcpStream) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = io::Result<()>> + 'static,
{
    let args = ServerArgs::parse(std::env::args().skip(1), default_port).unwrap_or_else(|e| {
        eprintln!("{e}\nusage: {name} {USAGE}");
        std::process::exit(2);
    });
    if args.stats {
        if let Err(e) = stats::block_signals() {
            eprintln!("error: cannot set up --stats: {e}");
            std::process::exit(1);
        }
    }
    let handler = handler(args.handling);
    let mut builder = Builder::new()
        .backend(args.backend)
        .reactors(args.reactors)
        .wake(args.wake);
    if let Some(pool) = args.pool {
        builder = builder.pool_threads(pool);
    }
    if let Err(e) = builder.block_on(serve(&args, handler)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn serve<H, Fut>(args: &ServerArgs, handler: H) -> io::Result<()>
where
    H: Fn(TcpStream) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = io::Result<()>> + 'static,
{
    let bound = runtime::serve(args.addr, move |stream| {
        let conn = handler(stream);
        async move {
            if let Err(e) = conn.await {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                ) {
                    eprintln!("connection error: {e}");
                }
            }
        }
    })
    .await?;
    if args.stats {
        stats::print_on_signal(runtime::reactors());
    }
    let backend = runtime::running_backend().expect("inside the runtime");
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {bound} (backend: {})", backend.kind())?;
    out.flush()?;
    drop(out);
    eprintln!("backend: {backend}");
    std::future::pending().await
}

/// `--stats`: the counters of every reactor, printed on SIGINT or SIGTERM.
mod stats {
    use std::io::{self, Write};

    fn signals() -> libc::sigset_t {
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

    /// Blocks SIGINT and SIGTERM in the calling thread and every thread it starts afterwards
    /// (call it before the runtime starts), so that only [`print_on_signal`]'s thread sees them.
    pub(super) fn block_signals() -> io::Result<()> {
        let set = signals();
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
    pub(super) fn print_on_signal(reactors: Vec<runtime::ReactorHandle>) {
        std::thread::spawn(move || {
            let set = signals();
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
}
