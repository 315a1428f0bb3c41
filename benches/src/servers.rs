//! The servers under test, each run in its own process pinned to one core.
//!
//! `compare serve <kind> <protocol> --cpu N` runs one of them (this is how the harness starts
//! its children). Every kind answers with the same handler logic: echo writes back what it
//! read; HTTP answers each whole request with `examples::http::respond`, pipelined requests in
//! one write.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use crate::cpu;

/// A server implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// This runtime on its io_uring backend.
    OursUring,
    /// This runtime on its epoll backend.
    OursEpoll,
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

impl ServerKind {
    /// Every kind, in the order tables list them.
    pub const ALL: [ServerKind; 7] = [
        ServerKind::OursUring,
        ServerKind::OursEpoll,
        ServerKind::TokioCurrentThread,
        ServerKind::TokioMultiThread,
        ServerKind::Monoio,
        ServerKind::MonoioDefer,
        ServerKind::RawEpoll,
    ];

    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::OursUring => "ours-uring",
            ServerKind::OursEpoll => "ours-epoll",
            ServerKind::TokioCurrentThread => "tokio-ct",
            ServerKind::TokioMultiThread => "tokio-mt",
            ServerKind::RawEpoll => "raw-epoll",
            ServerKind::Monoio => "monoio",
            ServerKind::MonoioDefer => "monoio-defer",
        }
    }

    /// Parses [`name`](ServerKind::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether this is one of this project's servers (the others are peers).
    pub fn is_ours(self) -> bool {
        matches!(self, ServerKind::OursUring | ServerKind::OursEpoll)
    }
}

/// What a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Writes back what it reads.
    Echo,
    /// HTTP/1.1 plaintext, "Hello, World!".
    Http,
}

impl Protocol {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Echo => "echo",
            Protocol::Http => "http",
        }
    }

    /// Parses [`name`](Protocol::name).
    pub fn from_name(name: &str) -> Option<Self> {
        [Protocol::Echo, Protocol::Http]
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
        }
    }
}

/// Runs a server of `kind` speaking `protocol` on 127.0.0.1:0 in this process, pinned to
/// `cpu`; prints `listening on <addr>` and serves until killed.
pub fn serve(kind: ServerKind, protocol: Protocol, cpu: usize) -> io::Result<()> {
    cpu::pin_to(cpu)?;
    match kind {
        ServerKind::OursUring => serve_ours(runtime::Backend::Uring, protocol),
        ServerKind::OursEpoll => serve_ours(runtime::Backend::Epoll, protocol),
        ServerKind::TokioCurrentThread => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()?;
            rt.block_on(serve_tokio(protocol))
        }
        ServerKind::TokioMultiThread => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_io()
                .build()?;
            rt.block_on(serve_tokio(protocol))
        }
        ServerKind::RawEpoll => serve_raw_epoll(protocol),
        ServerKind::Monoio => serve_monoio(protocol, io_uring_06::IoUring::builder()),
        ServerKind::MonoioDefer => {
            let mut ring = io_uring_06::IoUring::builder();
            ring.setup_single_issuer().setup_defer_taskrun();
            serve_monoio(protocol, ring)
        }
    }
}

fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")?;
    out.flush()
}

fn serve_ours(backend: runtime::Backend, protocol: Protocol) -> io::Result<()> {
    use examples::Placement::Inline;
    runtime::Builder::new()
        .backend(backend)
        .reactors(1)
        .pool_threads(0)
        .try_block_on(async move {
            let info = runtime::backend().expect("inside the runtime");
            if info.backend() != backend {
                return Err(io::Error::other(format!("asked for {backend}, got {info}")));
            }
            let listener = runtime::net::TcpListener::bind("127.0.0.1:0")?;
            announce(listener.local_addr()?)?;
            loop {
                let (stream, _) = listener.accept().await?;
                match protocol {
                    Protocol::Echo => drop(runtime::spawn(examples::echo::echo(stream, Inline))),
                    Protocol::Http => drop(runtime::spawn(examples::http::serve(stream, Inline))),
                }
            }
        })?
}

async fn serve_tokio(protocol: Protocol) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
                let Some(out) = protocol.answer(&mut pending) else {
                    return Ok(());
                };
                stream.write_all(&out).await?;
            }
        });
    }
}

fn serve_monoio(protocol: Protocol, ring: io_uring_06::Builder) -> io::Result<()> {
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
                    let Some(out) = protocol.answer(&mut pending) else {
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

fn serve_raw_epoll(protocol: Protocol) -> io::Result<()> {
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
            if raw_turn(conn, protocol, &mut buf).is_err() {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}

/// Reads what is there, answers, writes what fits; `Err` closes the connection.
fn raw_turn(conn: &mut RawConn, protocol: Protocol, buf: &mut [u8]) -> io::Result<()> {
    loop {
        match conn.stream.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => conn.pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    let out = protocol
        .answer(&mut conn.pending)
        .ok_or(io::ErrorKind::ConnectionAborted)?;
    conn.unsent.extend_from_slice(&out);
    while !conn.unsent.is_empty() {
        match conn.stream.write(&conn.unsent) {
            Ok(n) => drop(conn.unsent.drain(..n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A server child process; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `kind` speaking `protocol` in a child process (this executable, `serve` mode)
    /// pinned to `cpu`.
    pub fn start(kind: ServerKind, protocol: Protocol, cpu: usize) -> io::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "serve",
                kind.name(),
                protocol.name(),
                "--cpu",
                &cpu.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => Ok(ServerProcess { child, addr }),
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
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
