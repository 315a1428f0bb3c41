//! What the example servers share: their flags, their startup line, and `--stats`.

use std::future::Future;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::task::Poll;
use std::time::Duration;

use runtime::net::TcpStream;
use runtime::signal::{signal, SignalKind};
use runtime::{Backend, Builder, Draining, WakeStrategy};

use crate::{Handling, Placement};

/// The flags every example server takes.
pub const USAGE: &str = "[--addr IP:PORT] [--backend uring|epoll|auto] [--reactors N] [--pool N] \
[--offload] [--work-us N] [--wake STRATEGY] [--latency-budget-us N] [--stats]";

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
    /// The reactors' latency budget (`Builder::latency_budget`), if any.
    pub latency_budget: Option<Duration>,
    /// Print every reactor's counters on SIGINT or SIGTERM (before the graceful shutdown).
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
            latency_budget: None,
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
                "--latency-budget-us" => {
                    let us = value()?
                        .parse()
                        .map_err(|e| format!("--latency-budget-us: {e}"))?;
                    parsed.latency_budget = Some(Duration::from_micros(us));
                }
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

/// Parses the command line and serves on every reactor until SIGINT or SIGTERM, then shuts
/// down gracefully. `handler` makes the connection handler, given how to handle requests and
/// the server's [`Draining`] signal. The first stdout line is `listening on <ip:port> (backend:
/// <uring|epoll>)`. Bad flags exit with status 2, a runtime that cannot start with status 1.
pub fn main<H, Fut>(name: &str, default_port: u16, handler: impl FnOnce(Handling, Draining) -> H)
where
    H: Fn(TcpStream) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = io::Result<()>> + 'static,
{
    run(
        name,
        default_port,
        std::env::args().skip(1).collect(),
        handler,
    )
}

/// [`main`] with the flags given (without the program name).
pub fn run<H, Fut>(
    name: &str,
    default_port: u16,
    args: Vec<String>,
    handler: impl FnOnce(Handling, Draining) -> H,
) where
    H: Fn(TcpStream) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = io::Result<()>> + 'static,
{
    let args = parse_or_exit(name, args, default_port);
    exit_on_error(builder(&args).block_on(serve(&args, handler)));
}

/// Parses the flags, or prints the usage and exits with status 2.
pub fn parse_or_exit(name: &str, args: Vec<String>, default_port: u16) -> ServerArgs {
    ServerArgs::parse(args, default_port).unwrap_or_else(|e| {
        eprintln!("{e}\nusage: {name} {USAGE}");
        std::process::exit(2);
    })
}

/// The runtime the flags ask for.
pub fn builder(args: &ServerArgs) -> Builder {
    let mut builder = Builder::new()
        .backend(args.backend)
        .reactors(args.reactors)
        .wake(args.wake);
    if let Some(pool) = args.pool {
        builder = builder.pool_threads(pool);
    }
    if let Some(budget) = args.latency_budget {
        builder = builder.latency_budget(budget);
    }
    builder
}

/// Exits with status 1 and the error, if there is one.
pub fn exit_on_error(res: io::Result<()>) {
    if let Err(e) = res {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn serve<H, Fut>(
    args: &ServerArgs,
    handler: impl FnOnce(Handling, Draining) -> H,
) -> io::Result<()>
where
    H: Fn(TcpStream) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = io::Result<()>> + 'static,
{
    // Listening before the first line is printed: a signal sent as soon as it is read is heard.
    let stop = stop_signal()?;
    let server = runtime::Server::bind(args.addr).await?;
    let handler = handler(args.handling, server.draining());
    server.serve(move |stream| report_connection(handler(stream)))?;
    announce(server.local_addr())?;
    stop.await;
    shut_down(server, args.stats).await
}

/// Runs a connection's handler and reports its error on stderr, unless the peer just went away
/// (a reset, a broken pipe).
pub async fn report_connection(conn: impl Future<Output = io::Result<()>>) {
    if let Err(e) = conn.await {
        if !matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ) {
            eprintln!("connection error: {e}");
        }
    }
}

/// Prints the startup line (`listening on <ip:port> (backend: <uring|epoll>)`) on stdout, and
/// the backend's details on stderr.
pub fn announce(addr: SocketAddr) -> io::Result<()> {
    announce_at(addr)
}

/// [`announce`] for any address that prints (a Unix socket's path).
pub fn announce_at(addr: impl std::fmt::Display) -> io::Result<()> {
    let backend = runtime::running_backend().expect("inside the runtime");
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr} (backend: {})", backend.kind())?;
    out.flush()?;
    drop(out);
    eprintln!("backend: {backend}");
    Ok(())
}

/// How long connections in flight get to finish after SIGINT or SIGTERM.
pub const GRACE: Duration = Duration::from_secs(5);

/// A future that completes at the first SIGINT or SIGTERM (listening from this call on).
pub fn stop_signal() -> io::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        std::future::poll_fn(|cx| {
            if interrupt.poll_recv(cx).is_ready() || terminate.poll_recv(cx).is_ready() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    })
}

/// The graceful stop: with `--stats`, every reactor's counters on stdout; then the server
/// stops accepting and its connections get [`GRACE`] to finish.
pub async fn shut_down(server: runtime::Server, stats: bool) -> io::Result<()> {
    if stats {
        print_stats()?;
    }
    server.stop_accepting().await;
    eprintln!("stopped accepting; connections get {GRACE:?} to finish");
    let report = server.shutdown(GRACE).await;
    eprintln!(
        "shut down: {} connections finished, {} cancelled at the deadline",
        report.finished, report.cancelled
    );
    Ok(())
}

/// The counters of every reactor, then their total.
pub fn print_stats() -> io::Result<()> {
    let snapshots = runtime::metrics();
    let mut out = io::stdout().lock();
    for (i, s) in snapshots.iter().enumerate() {
        writeln!(out, "reactor {i}: {s}")?;
    }
    let total = runtime::MetricsSnapshot::sum(&snapshots);
    writeln!(out, "total: {total}")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::ServerArgs;

    fn parse(args: &[&str]) -> Result<ServerArgs, String> {
        ServerArgs::parse(args.iter().map(|s| s.to_string()), 7000)
    }

    #[test]
    fn the_latency_budget_flag_is_read_and_checked() {
        assert_eq!(parse(&[]).expect("no flags").latency_budget, None);
        let args = parse(&["--latency-budget-us", "50"]).expect("flag");
        assert_eq!(
            args.latency_budget,
            Some(std::time::Duration::from_micros(50))
        );
        let err = parse(&["--latency-budget-us", "soon"]).expect_err("not a number");
        assert!(err.contains("--latency-budget-us"), "{err}");
        parse(&["--latency-budget-us"]).expect_err("no value");
    }
}
