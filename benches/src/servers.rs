//! The servers under test, each run in its own process pinned to one core.
//!
//! `compare serve <kind> --cpu N` runs one of them (this is how the harness starts its children);
//! every kind runs the same handler logic: read up to 4 KiB, write it all back.

use std::io::{self, BufRead, BufReader, Write};
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
}

impl ServerKind {
    /// Every kind, in the order tables list them.
    pub const ALL: [ServerKind; 3] = [
        ServerKind::OursUring,
        ServerKind::OursEpoll,
        ServerKind::TokioCurrentThread,
    ];

    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::OursUring => "ours-uring",
            ServerKind::OursEpoll => "ours-epoll",
            ServerKind::TokioCurrentThread => "tokio-ct",
        }
    }

    /// Parses [`name`](ServerKind::name).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Runs a server of `kind` on 127.0.0.1:0 in this process, pinned to `cpu`; prints
/// `listening on <addr>` and serves until killed.
pub fn serve(kind: ServerKind, cpu: usize) -> io::Result<()> {
    cpu::pin_to(cpu)?;
    match kind {
        ServerKind::OursUring => serve_ours(runtime::Backend::Uring),
        ServerKind::OursEpoll => serve_ours(runtime::Backend::Epoll),
        ServerKind::TokioCurrentThread => serve_tokio(),
    }
}

fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")?;
    out.flush()
}

fn serve_ours(backend: runtime::Backend) -> io::Result<()> {
    runtime::Builder::new()
        .backend(backend)
        .try_block_on(async move {
            let info = runtime::backend().expect("inside the runtime");
            if info.backend() != backend {
                return Err(io::Error::other(format!("asked for {backend}, got {info}")));
            }
            let listener = runtime::net::TcpListener::bind("127.0.0.1:0")?;
            announce(listener.local_addr()?)?;
            loop {
                let (stream, _) = listener.accept().await?;
                runtime::spawn(examples::echo::echo(stream, examples::Placement::Inline));
            }
        })?
}

fn serve_tokio() -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        announce(listener.local_addr()?)?;
        loop {
            let (mut stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                stream.set_nodelay(true)?;
                let mut buf = vec![0u8; 4096];
                loop {
                    let n = stream.read(&mut buf).await?;
                    if n == 0 {
                        return io::Result::Ok(());
                    }
                    stream.write_all(&buf[..n]).await?;
                }
            });
        }
    })
}

/// A server child process; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `kind` in a child process (this executable, `serve` mode) pinned to `cpu`, with
    /// `env` added to its environment.
    pub fn start(kind: ServerKind, cpu: usize, env: &[(&str, &str)]) -> io::Result<Self> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["serve", kind.name(), "--cpu", &cpu.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
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
