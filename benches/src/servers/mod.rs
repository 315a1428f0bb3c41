//! The servers under test, each run in its own process pinned to one core.
//!
//! `compare serve <kind> <protocol> --cpu N --work-us N` runs one of them (this is how the
//! harness starts its children). Every kind answers with the same handler logic: echo writes back what it
//! read; HTTP answers each whole request with `examples::http::respond`, pipelined requests in
//! one write.

mod monoio;
mod ours;
mod process;
mod raw_epoll;
mod tokio;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use runtime::{Backend, FastPath};

use crate::cpu;

pub use process::ServerProcess;

/// A server implementation under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// This runtime, on one reactor.
    Ours(Ours),
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

/// How one of our servers runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ours {
    /// `uring` or `epoll`.
    pub backend: Backend,
    /// Replies computed and written by one pool thread (`--offload`).
    pub offload: bool,
    /// The wake strategy's name (`WakeStrategy::parse`), if not the default.
    pub wake: Option<&'static str>,
    /// The latency budget in microseconds (`Builder::latency_budget`; 0: none).
    pub budget_us: u32,
    /// An io_uring fast path switched from its default (`runtime::FAST_PATHS`, through
    /// `Builder::uring_fast_path`), if any.
    pub flipped: Option<FastPath>,
}

impl Ours {
    /// Inline on `backend`, with the defaults.
    pub const fn inline(backend: Backend) -> Self {
        Ours {
            backend,
            offload: false,
            wake: None,
            budget_us: 0,
            flipped: None,
        }
    }

    /// `ours-<backend>[+pool][/<wake>][~<N>us][!<path>]`.
    fn name(self) -> String {
        let mut name = format!("ours-{}", self.backend);
        if self.offload {
            name.push_str("+pool");
        }
        if let Some(w) = self.wake {
            name.push('/');
            name.push_str(w);
        }
        if self.budget_us > 0 {
            name.push_str(&format!("~{}us", self.budget_us));
        }
        if let Some(path) = self.flipped {
            name.push('!');
            name.push_str(path.name);
        }
        name
    }
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
        ServerKind::Ours(Ours::inline(backend))
    }

    /// Ours, inline, on `backend`, with a latency budget of `budget_us` microseconds.
    pub const fn ours_budget(backend: Backend, budget_us: u32) -> Self {
        ServerKind::Ours(Ours {
            budget_us,
            ..Ours::inline(backend)
        })
    }

    /// This server with the io_uring fast path `path` switched from its default: off if it is
    /// on by default, on if off (peers have none).
    /// Panics if there is no fast path called `path`.
    pub fn flipped(mut self, path: &str) -> Self {
        if let ServerKind::Ours(ours) = &mut self {
            ours.flipped = Some(FastPath::named(path).expect("a known fast path"));
        }
        self
    }

    /// Ours on `backend` with one pool thread answering, woken by `wake` (default if `None`).
    pub const fn ours_offload(backend: Backend, wake: Option<&'static str>) -> Self {
        ServerKind::Ours(Ours {
            offload: true,
            wake,
            ..Ours::inline(backend)
        })
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
    /// `ours-uring+pool/msg-ring`, `ours-uring~50us` (a latency budget),
    /// `ours-uring!min-wait` (a fast path switched from its default), `tokio-ct`, ...
    pub fn name(self) -> String {
        match self {
            ServerKind::Ours(ours) => ours.name(),
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
        let (rest, flipped) = match rest.split_once('!') {
            Some((r, path)) => (r, Some(FastPath::named(path)?)),
            None => (rest, None),
        };
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
        Some(ServerKind::Ours(Ours {
            backend,
            offload,
            wake,
            budget_us,
            flipped,
        }))
    }

    /// Whether this is one of this project's servers (the others are peers).
    pub fn is_ours(self) -> bool {
        matches!(self, ServerKind::Ours(_))
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
        ServerKind::Ours(Ours { offload: false, .. })
            | ServerKind::TokioCurrentThread
            | ServerKind::TokioMultiThread
    );
    if matches!(protocol, Protocol::Hyper | Protocol::Udp) && (!hyper_peer || !work.is_zero()) {
        return Err(io::Error::other(
            "the hyper and UDP workloads run on ours (inline) and tokio, without --work-us",
        ));
    }
    match kind {
        ServerKind::Ours(ours) => ours::serve_ours(ours, handler),
        ServerKind::TokioCurrentThread => {
            let mut rt = ::tokio::runtime::Builder::new_current_thread();
            if protocol == Protocol::Hyper {
                // hyper's timer (the header read timeout) runs on tokio's.
                rt.enable_time();
            }
            let rt = rt.enable_io().build()?;
            rt.block_on(tokio::serve_tokio(handler))
        }
        ServerKind::TokioMultiThread => {
            let mut rt = ::tokio::runtime::Builder::new_multi_thread();
            if protocol == Protocol::Hyper {
                rt.enable_time();
            }
            let rt = rt.worker_threads(1).enable_io().build()?;
            rt.block_on(tokio::serve_tokio(handler))
        }
        ServerKind::RawEpoll => raw_epoll::serve_raw_epoll(handler),
        ServerKind::Monoio => monoio::serve_monoio(handler, io_uring_06::IoUring::builder()),
        ServerKind::MonoioDefer => {
            let mut ring = io_uring_06::IoUring::builder();
            ring.setup_single_issuer().setup_defer_taskrun();
            monoio::serve_monoio(handler, ring)
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
        kinds.extend(
            crate::workloads::ablation()
                .into_iter()
                .flat_map(|w| w.servers),
        );
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
        assert_eq!(
            ServerKind::ours_budget(Backend::Uring, 200)
                .flipped("min-wait")
                .name(),
            "ours-uring~200us!min-wait"
        );
        assert_eq!(ServerKind::from_name("ours-uring!turbo"), None);
    }
}
