//! The servers under test, each run in its own process pinned to one core.
//!
//! `compare serve <kind> <protocol> --cpu N --work-us N` runs one of them (this is how the
//! harness starts its children). Every kind answers with the same handler logic: echo writes back what it
//! read; HTTP answers each whole request with `examples::http::respond`, pipelined requests in
//! one write.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use examples::{Handling, Placement};
use runtime::{Backend, Builder, WakeStrategy};

use crate::cpu;

/// A server implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// This runtime, on one reactor.
    Ours {
        /// `uring` or `epoll`.
        backend: Backend,
        /// Replies computed and written by one pool thread (`--offload`).
        offload: bool,
        /// The wake strategy's name (`WakeStrategy::parse`), if not the default.
        wake: Option<&'static str>,
        /// The latency budget in microseconds (`Builder::latency_budget`; 0: none).
        budget_us: u32,
    },
    /// tokio's `current_thread` runtime.
    TokioCurrentThread,
    /// tokio's `multi_thread` runtime (one worker: the server has one core).
    TokioMultiThread,
    /// A hand-written single-threaded epoll loop (mio): the floor.
    RawEpoll,
    /// monoio with its default io_uring setup.
    Monoio,
    /// monoio with a `SINGLE_ISSUER | DEFER_TASKRUN` ring.
    MonoioDefer,
}

/// The wake strategies measured with offload, by their `--wake` names.
pub const WAKE_STRATEGIES: [&str; 6] = [
    "eventfd",
    "eventfd-if-parked",
    "timeout:1ms",
    "sqpoll",
    "msg-ring",
    "direct-first",
];

impl ServerKind {
    /// Ours, inline, on `backend`.
    pub const fn ours(backend: Backend) -> Self {
        ServerKind::Ours {
            backend,
            offload: false,
            wake: None,
            budget_us: 0,
        }
    }

    /// Ours, inline, on `backend`, with a latency budget of `budget_us` microseconds.
    pub const fn ours_budget(backend: Backend, budget_us: u32) -> Self {
        ServerKind::Ours {
            backend,
            offload: false,
            wake: None,
            budget_us,
        }
    }

    /// Ours on `backend` with one pool thread answering, woken by `wake` (default if `None`).
    pub const fn ours_offload(backend: Backend, wake: Option<&'static str>) -> Self {
        ServerKind::Ours {
            backend,
            offload: true,
            wake,
            budget_us: 0,
        }
    }

    /// Both of our backends and every peer, in the order tables list them.
    pub const STANDARD: [ServerKind; 7] = [
        ServerKind::ours(Backend::Uring),
        ServerKind::ours(Backend::Epoll),
        ServerKind::TokioCurrentThread,
        ServerKind::TokioMultiThread,
        ServerKind::Monoio,
        ServerKind::MonoioDefer,
        ServerKind::RawEpoll,
    ];

    /// Inline against offloaded on both backends, and offloaded on io_uring with every wake
    /// strategy (the default, `direct-first`, is plain `ours-uring+pool`).
    pub fn offload_matrix() -> Vec<ServerKind> {
        let mut v = vec![
            ServerKind::ours(Backend::Uring),
            ServerKind::ours(Backend::Epoll),
            ServerKind::ours_offload(Backend::Epoll, None),
            ServerKind::ours_offload(Backend::Uring, None),
        ];
        v.extend(
            WAKE_STRATEGIES
                .iter()
                .filter(|w| **w != "direct-first")
                .map(|w| ServerKind::ours_offload(Backend::Uring, Some(w))),
        );
        v
    }

    /// The name used on the command line and in tables: `ours-uring`, `ours-epoll+pool`,
    /// `ours-uring+pool/msg-ring`, `ours-uring~50us` (a latency budget), `tokio-ct`, ...
    pub fn name(self) -> String {
        match self {
            ServerKind::Ours {
                backend,
                offload,
                wake,
                budget_us,
            } => {
                let mut name = format!("ours-{backend}");
                if offload {
                    name.push_str("+pool");
                }
                if let Some(w) = wake {
                    name.push('/');
                    name.push_str(w);
                }
                if budget_us > 0 {
                    name.push_str(&format!("~{budget_us}us"));
                }
                name
            }
            ServerKind::TokioCurrentThread => "tokio-ct".into(),
            ServerKind::TokioMultiThread => "tokio-mt".into(),
            ServerKind::RawEpoll => "raw-epoll".into(),
            ServerKind::Monoio => "monoio".into(),
            ServerKind::MonoioDefer => "monoio-defer".into(),
        }
    }

    /// Parses [`name`](ServerKind::name).
    pub fn from_name(name: &str) -> Option<Self> {
        let peers = [
            ServerKind::TokioCurrentThread,
            ServerKind::TokioMultiThread,
            ServerKind::RawEpoll,
            ServerKind::Monoio,
            ServerKind::MonoioDefer,
        ];
        if let Some(peer) = peers.into_iter().find(|k| k.name() == name) {
            return Some(peer);
        }
        let rest = name.strip_prefix("ours-")?;
        let (rest, budget_us) = match rest.split_once('~') {
            Some((r, b)) => (r, b.strip_suffix("us")?.parse().ok()?),
            None => (rest, 0),
        };
        let (rest, wake) = match rest.split_once('/') {
            Some((r, w)) => (r, Some(*WAKE_STRATEGIES.iter().find(|s| **s == w)?)),
            None => (rest, None),
        };
        let (backend, offload) = match rest.strip_suffix("+pool") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        let backend = match backend {
            "uring" => Backend::Uring,
            "epoll" => Backend::Epoll,
            _ => return None,
        };
        Some(ServerKind::Ours {
            backend,
            offload,
            wake,
            budget_us,
        })
    }

    /// Whether this is one of this project's servers (the others are peers).
    pub fn is_ours(self) -> bool {
        matches!(self, ServerKind::Ours { .. })
    }
}

/// What a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Writes back what it reads.
    Echo,
    /// HTTP/1.1 plaintext, "Hello, World!".
    Http,
    /// The hyper example's service (`GET /`: "Hello, World!") with hyper-util's auto builder:
    /// through `runtime::compat` on ours, hyper-util's tokio glue on tokio.
    Hyper,
    /// UDP echo: each datagram back to its sender (the `udp_echo` example's code on ours).
    Udp,
}

impl Protocol {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Echo => "echo",
            Protocol::Http => "http",
            Protocol::Hyper => "hyper",
            Protocol::Udp => "udp",
        }
    }

    /// Parses [`name`](Protocol::name).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Protocol::Echo,
            Protocol::Http,
            Protocol::Hyper,
            Protocol::Udp,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }

    /// Answers the whole requests at the start of `pending` (removing them); `None` means the
    /// connection must close.
    fn answer(self, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
        match self {
            Protocol::Echo => Some(std::mem::take(pending)),
            Protocol::Http => {
                let (out, close) = examples::http::respond(pending);
                (!close).then_some(out)
            }
            Protocol::Hyper | Protocol::Udp => unreachable!("served by their own loops"),
        }
    }
}

/// Runs a server of `kind` speaking `protocol` on 127.0.0.1:0 in this process, pinned to
/// `cpu`, spending `work` of CPU per read before answering; prints `listening on <addr>` and
/// serves until killed. Ours also answer `metrics` lines on stdin with their counters.
pub fn serve(kind: ServerKind, protocol: Protocol, work: Duration, cpu: usize) -> io::Result<()> {
    cpu::pin_to(cpu)?;
    let handler = Handler { protocol, work };
    let hyper_peer = matches!(
        kind,
        ServerKind::Ours { offload: false, .. }
            | ServerKind::TokioCurrentThread
            | ServerKind::TokioMultiThread
    );
    if matches!(protocol, Protocol::Hyper | Protocol::Udp) && (!hyper_peer || !work.is_zero()) {
        return Err(io::Error::other(
            "the hyper and UDP workloads run on ours (inline) and tokio, without --work-us",
        ));
    }
    match kind {
        ServerKind::Ours {
            backend,
            offload,
            wake,
            budget_us,
        } => serve_ours(backend, offload, wake, budget_us, handler),
        ServerKind::TokioCurrentThread => {
            let mut rt = tokio::runtime::Builder::new_current_thread();
            if protocol == Protocol::Hyper {
                // hyper's timer (the header read timeout) runs on tokio's.
                rt.enable_time();
            }
            let rt = rt.enable_io().build()?;
            rt.block_on(serve_tokio(handler))
        }
        ServerKind::TokioMultiThread => {
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            if protocol == Protocol::Hyper {
                rt.enable_time();
            }
            let rt = rt.worker_threads(1).enable_io().build()?;
            rt.block_on(serve_tokio(handler))
        }
        ServerKind::RawEpoll => serve_raw_epoll(handler),
        ServerKind::Monoio => serve_monoio(handler, io_uring_06::IoUring::builder()),
        ServerKind::MonoioDefer => {
            let mut ring = io_uring_06::IoUring::builder();
            ring.setup_single_issuer().setup_defer_taskrun();
            serve_monoio(handler, ring)
        }
    }
}

/// What every server does with the bytes it reads.
#[derive(Debug, Clone, Copy)]
struct Handler {
    protocol: Protocol,
    work: Duration,
}

impl Handler {
    /// Spends the work, then answers the whole requests at the start of `pending` (removing
    /// them); `None` means the connection must close.
    fn answer(self, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
        examples::busy_work(self.work);
        self.protocol.answer(pending)
    }
}

fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")?;
    out.flush()
}

fn serve_ours(
    backend: Backend,
    offload: bool,
    wake: Option<&str>,
    budget_us: u32,
    handler: Handler,
) -> io::Result<()> {
    let wake = match wake {
        Some(w) => WakeStrategy::parse(w).map_err(io::Error::other)?,
        None => WakeStrategy::default(),
    };
    let handling = Handling {
        placement: if offload {
            Placement::Offload
        } else {
            Placement::Inline
        },
        work: handler.work,
    };
    let mut builder = Builder::new()
        .backend(backend)
        .reactors(1)
        .pool_threads(usize::from(offload))
        .wake(wake);
    if budget_us > 0 {
        builder = builder.latency_budget(Duration::from_micros(budget_us.into()));
    }
    builder.try_block_on(async move {
        let info = runtime::running_backend().expect("inside the runtime");
        if runtime::Backend::from(info.kind()) != backend {
            return Err(io::Error::other(format!("asked for {backend}, got {info}")));
        }
        if handler.protocol == Protocol::Hyper {
            return serve_ours_hyper().await;
        }
        if handler.protocol == Protocol::Udp {
            let socket = runtime::net::UdpSocket::bind("127.0.0.1:0").await?;
            answer_metrics_requests(runtime::reactors());
            announce(socket.local_addr()?)?;
            return examples::udp_echo::echo(socket, handling).await;
        }
        let listener = runtime::net::TcpListener::bind("127.0.0.1:0")?;
        answer_metrics_requests(runtime::reactors());
        announce(listener.local_addr()?)?;
        loop {
            let (stream, _) = listener.accept().await?;
            match handler.protocol {
                Protocol::Echo => drop(runtime::spawn(examples::echo::echo(stream, handling))),
                Protocol::Http => drop(runtime::spawn(examples::http::serve(stream, handling))),
                Protocol::Hyper | Protocol::Udp => unreachable!("served above"),
            }
        }
    })?
}

/// The hyper example's service through `runtime::compat`.
async fn serve_ours_hyper() -> io::Result<()> {
    let server = runtime::Server::bind("127.0.0.1:0".parse().expect("addr")).await?;
    let draining = server.draining();
    server.serve(move |stream| {
        let service = hyper::service::service_fn(examples::hyper_app::route);
        let conn = examples::hyper_app::serve_connection(stream, None, service, draining.clone());
        async move {
            let _ = conn.await;
        }
    })?;
    answer_metrics_requests(runtime::reactors());
    announce(server.local_addr())?;
    std::future::pending().await
}

/// The hyper example's service on tokio, through hyper-util's tokio glue.
async fn serve_tokio_hyper() -> io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    announce(listener.local_addr()?)?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new());
            builder.http2().timer(TokioTimer::new());
            let service = hyper::service::service_fn(examples::hyper_app::route);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// UDP echo on tokio: each datagram back to its sender.
async fn serve_tokio_udp() -> io::Result<()> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    announce(socket.local_addr()?)?;
    let mut buf = vec![0u8; examples::udp_echo::DATAGRAM_ROOM];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        socket.send_to(&buf[..n], from).await?;
    }
}

/// For each `metrics` line on stdin, prints `metrics <name>=<value> ...` (every reactor's
/// counters summed) on stdout.
fn answer_metrics_requests(reactors: Vec<runtime::ReactorHandle>) {
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if line.trim() != "metrics" {
                continue;
            }
            let snapshots: Vec<_> = reactors.iter().map(|r| r.metrics().snapshot()).collect();
            let total = runtime::MetricsSnapshot::sum(&snapshots);
            let mut out = io::stdout().lock();
            if writeln!(out, "metrics {total}")
                .and_then(|()| out.flush())
                .is_err()
            {
                return;
            }
        }
    });
}

async fn serve_tokio(handler: Handler) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if handler.protocol == Protocol::Hyper {
        return serve_tokio_hyper().await;
    }
    if handler.protocol == Protocol::Udp {
        return serve_tokio_udp().await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    announce(listener.local_addr()?)?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            stream.set_nodelay(true)?;
            let mut buf = vec![0u8; 4096];
            let mut pending = Vec::new();
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return io::Result::Ok(());
                }
                pending.extend_from_slice(&buf[..n]);
                let Some(out) = handler.answer(&mut pending) else {
                    return Ok(());
                };
                stream.write_all(&out).await?;
            }
        });
    }
}

fn serve_monoio(handler: Handler, ring: io_uring_06::Builder) -> io::Result<()> {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(256)
        .uring_builder(ring)
        .build()?;
    rt.block_on(async move {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0")?;
        announce(listener.local_addr()?)?;
        loop {
            let (mut stream, _) = listener.accept().await?;
            monoio::spawn(async move {
                stream.set_nodelay(true)?;
                let mut buf = vec![0u8; 4096];
                let mut pending = Vec::new();
                loop {
                    let (res, b) = stream.read(buf).await;
                    let n = res?;
                    if n == 0 {
                        return io::Result::Ok(());
                    }
                    pending.extend_from_slice(&b[..n]);
                    buf = b;
                    let Some(out) = handler.answer(&mut pending) else {
                        return Ok(());
                    };
                    let (res, _) = stream.write_all(out).await;
                    res?;
                }
            });
        }
    })
}

/// One connection of the raw loop: what it has read and not answered, and what it could not
/// write yet.
struct RawConn {
    stream: mio::net::TcpStream,
    pending: Vec<u8>,
    unsent: Vec<u8>,
}

fn serve_raw_epoll(handler: Handler) -> io::Result<()> {
    use mio::{Events, Interest, Poll, Token};
    const LISTENER: Token = Token(usize::MAX);
    let mut poll = Poll::new()?;
    let mut listener = mio::net::TcpListener::bind("127.0.0.1:0".parse().expect("addr"))?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    announce(listener.local_addr()?)?;
    let mut conns = slab::Slab::<RawConn>::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 4096];
    loop {
        poll.poll(&mut events, None)?;
        for event in events.iter() {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    stream.set_nodelay(true)?;
                    let entry = conns.vacant_entry();
                    let token = Token(entry.key());
                    poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert(RawConn {
                        stream,
                        pending: Vec::new(),
                        unsent: Vec::new(),
                    });
                }
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if raw_turn(conn, handler, &mut buf).is_err() {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}

/// Answers each read as it comes (as the runtimes' handlers do: one read, one reply), writing
/// what it owes before it reads again, so a peer that does not read holds the reading back;
/// `Err` closes the connection. Edge-triggered: returns only at `WouldBlock`, and a writable
/// event resumes the reading that a full socket buffer stopped.
fn raw_turn(conn: &mut RawConn, handler: Handler, buf: &mut [u8]) -> io::Result<()> {
    loop {
        while !conn.unsent.is_empty() {
            match conn.stream.write(&conn.unsent) {
                Ok(n) => drop(conn.unsent.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        match conn.stream.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                conn.pending.extend_from_slice(&buf[..n]);
                let out = handler
                    .answer(&mut conn.pending)
                    .ok_or(io::ErrorKind::ConnectionAborted)?;
                conn.unsent.extend_from_slice(&out);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// A server child process; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The child's stdin and stdout, for `metrics` requests.
    control: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
}

impl ServerProcess {
    /// Starts `kind` speaking `protocol` (with `work` per read) in a child process (this
    /// executable, `serve` mode) pinned to `cpu`.
    pub fn start(
        kind: ServerKind,
        protocol: Protocol,
        work: Duration,
        cpu: usize,
    ) -> io::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "serve",
                &kind.name(),
                protocol.name(),
                "--cpu",
                &cpu.to_string(),
                "--work-us",
                &work.as_micros().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => Ok(ServerProcess {
                child,
                addr,
                control: Mutex::new((stdin, stdout)),
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(io::Error::other(format!(
                    "{} did not start (printed {line:?})",
                    kind.name()
                )))
            }
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Our servers' counters, summed over reactors (`None` for peers, which have none).
    pub fn metrics(&self, kind: ServerKind) -> io::Result<Option<HashMap<String, u64>>> {
        if !kind.is_ours() {
            return Ok(None);
        }
        let mut control = self
            .control
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        let (stdin, stdout) = &mut *control;
        writeln!(stdin, "metrics")?;
        stdin.flush()?;
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let fields = line
            .trim()
            .strip_prefix("metrics ")
            .ok_or_else(|| io::Error::other(format!("bad metrics line {line:?}")))?;
        Ok(Some(
            fields
                .split_whitespace()
                .filter_map(|f| f.split_once('='))
                .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                .collect(),
        ))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::ServerKind;
    use runtime::Backend;

    #[test]
    fn every_server_name_parses_back() {
        let mut kinds = ServerKind::STANDARD.to_vec();
        kinds.extend(ServerKind::offload_matrix());
        kinds.push(ServerKind::ours_budget(Backend::Uring, 50));
        kinds.push(ServerKind::ours_budget(Backend::Epoll, 200));
        for kind in kinds {
            assert_eq!(
                ServerKind::from_name(&kind.name()),
                Some(kind),
                "{}",
                kind.name()
            );
        }
        assert_eq!(
            ServerKind::ours_budget(Backend::Uring, 50).name(),
            "ours-uring~50us"
        );
        assert_eq!(ServerKind::from_name("ours-uring~fastus"), None);
    }
}
