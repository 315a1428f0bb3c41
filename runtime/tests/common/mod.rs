//! Helpers shared by the integration tests (each test binary uses some of them).
#![allow(dead_code)]

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use runtime::net::{TcpListener, TcpStream};
use runtime::{BufResult, Builder, MetricsSnapshot};

/// `n` divided by `STRESS_SCALE` (at least 1): CI runs the stress suites under valgrind with a
/// larger divisor.
pub fn scaled(n: usize) -> usize {
    let divisor: usize = std::env::var("STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    (n / divisor.max(1)).max(1)
}

/// A connected pair on 127.0.0.1: (client, server).
pub async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    (client, server)
}

/// Writes `message` to `stream` and reads as many bytes back, `chunk` at a time: the message
/// and what came back. Panics, saying `who`, if the peer closes first.
pub async fn write_and_read_back(
    stream: &TcpStream,
    message: Vec<u8>,
    chunk: usize,
    who: &str,
) -> (Vec<u8>, Vec<u8>) {
    let BufResult(res, message) = stream.write_all(message).await;
    res.expect("write");
    let mut got = Vec::new();
    while got.len() < message.len() {
        let BufResult(res, buf) = stream.read(vec![0u8; chunk]).await;
        let n = res.expect("read");
        assert!(n > 0, "{who}: the peer closed");
        got.extend_from_slice(&buf[..n]);
    }
    (message, got)
}

/// Echoes until the peer closes or fails.
pub async fn echo(s: TcpStream) {
    let mut buf = vec![0u8; 8192];
    loop {
        let BufResult(res, b) = s.read(buf).await;
        let n = match res {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let BufResult(res, b) = s.write_all(b[..n].to_vec()).await;
        if res.is_err() {
            return;
        }
        buf = b;
        buf.resize(8192, 0);
    }
}

/// Serves [`echo`] on 127.0.0.1:0 from a task of the current reactor; returns the address.
pub fn spawn_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    runtime::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            runtime::spawn(echo(stream));
        }
    });
    addr
}

/// The scheduler state letter of thread `tid` of this process ('S' = asleep in the kernel).
pub fn thread_state(tid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).expect("stat");
    // The state follows the parenthesised command name.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    after.chars().next().expect("state")
}

/// Blocks until every thread of `tids` sleeps in the kernel at once (at once where reactors
/// never wait there: `RUNTIME_MAX_PARK=0ms`, as under valgrind).
pub fn wait_until_asleep(tids: &[i32]) {
    let never_parks = std::env::var("RUNTIME_MAX_PARK")
        .ok()
        .and_then(|v| runtime::parse_duration(&v))
        .is_some_and(|d| d.is_zero());
    if never_parks {
        return;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !tids.iter().all(|&t| thread_state(t) == 'S') {
        assert!(
            std::time::Instant::now() < deadline,
            "reactors never went to sleep"
        );
        std::thread::yield_now();
    }
}

/// The calling thread's id.
pub fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// A deterministic xorshift generator: the same drops on every run.
pub struct Rng(Cell<u64>);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(Cell::new(seed | 1))
    }
    pub fn next(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.set(x);
        x
    }
    /// A drop point: 0 µs (right after submission) up to a few hundred µs (parked, or done).
    pub fn drop_after(&self) -> Duration {
        match self.next() % 4 {
            0 => Duration::ZERO,
            1 => Duration::from_micros(self.next() % 50),
            _ => Duration::from_micros(self.next() % 400),
        }
    }
}

/// Polls `fut` once from the calling task (so that an operation starts here): its output if it
/// finished.
pub async fn poll_once<F: std::future::Future + ?Sized>(
    mut fut: std::pin::Pin<&mut F>,
) -> Option<F::Output> {
    let polled = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
    match polled {
        std::task::Poll::Ready(out) => Some(out),
        std::task::Poll::Pending => None,
    }
}

/// Every reactor's counters, summed.
pub fn totals() -> runtime::MetricsSnapshot {
    runtime::MetricsSnapshot::sum(&runtime::metrics())
}

/// On io_uring, that a result came from the salvage (a dropped operation's) since `before`.
pub fn assert_salvaged_on_uring_since(before: &runtime::MetricsSnapshot) {
    if on_uring() {
        let used = totals().since(before);
        assert!(
            used.salvaged > 0,
            "no receive came from the salvage: {used:?}"
        );
    }
}

/// Whether the test runs on io_uring.
pub fn on_uring() -> bool {
    runtime::running_backend().expect("in a runtime").kind() == runtime::BackendKind::Uring
}

/// TCP sockets on 127.0.0.1 with `port` at either end that an fd may still hold: established,
/// connecting, or closed by the peer only (`/proc/net/tcp` states 01, 02, 08). A socket whose
/// fd was closed is in none of these states.
pub fn open_sockets_on_port(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let port_of = |addr: &str| {
        addr.split(':')
            .nth(1)
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.len() > 3
                && matches!(cols[3], "01" | "02" | "08")
                && (port_of(cols[1]) == Some(port) || port_of(cols[2]) == Some(port))
        })
        .count()
}

/// Waits (yielding to the reactor, which submits queued closes) until no socket on `port` is
/// held open; fails after 10 s.
pub async fn all_closed_on_port(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = open_sockets_on_port(port);
        if open == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{open} sockets on port {port} still open after 10 s: an fd leaked"
        );
        runtime::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The backends compiled in that this kernel allows (io_uring may be refused; the reason is
/// printed).
pub fn backends() -> Vec<runtime::Backend> {
    use runtime::{Backend, Builder};
    let mut v = Vec::new();
    if cfg!(feature = "uring") {
        match Builder::new().backend(Backend::Uring).build() {
            Ok(_) => v.push(Backend::Uring),
            Err(e) => eprintln!("io_uring refused, not tested here: {e}"),
        }
    }
    if cfg!(feature = "epoll") {
        v.push(Backend::Epoll);
    }
    v
}

/// This process's fd limits: (soft, hard).
fn fd_limits() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

/// Sets this process's soft fd limit to `soft` (at most the hard limit).
pub fn set_soft_fd_limit(soft: u64) {
    let mut lim = fd_limits();
    lim.rlim_cur = soft.min(lim.rlim_max);
    // SAFETY: `lim` is a valid rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

/// Raises this process's soft fd limit to its hard limit; fails with a clear message if even
/// the hard limit is below `needed`.
pub fn raise_fd_limit(needed: u64) {
    let hard = fd_limits().rlim_max;
    assert!(
        hard >= needed,
        "this test needs {needed} file descriptors, but the hard RLIMIT_NOFILE is {hard}: raise \
         it (`ulimit -Hn`, or LimitNOFILE= for a service) and run again"
    );
    set_soft_fd_limit(hard);
}

/// Fails unless the runtime running this runs on `expected`: a test that builds its own runtime
/// for one backend must not be moved to another by `RUNTIME_BACKEND`.
pub fn assert_backend(expected: runtime::Backend) {
    let info = runtime::running_backend().expect("in a runtime");
    assert_eq!(
        runtime::Backend::from(info.kind()),
        expected,
        "this test asked for {expected} and runs on {info} (is RUNTIME_BACKEND set?)"
    );
}

/// Byte `i` of test stream `stream`: a pattern that no shift or swap of buffers leaves
/// unchanged.
pub fn stream_byte(stream: usize, i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9) ^ stream.wrapping_mul(97)) as u8
}

/// Runs `work` on one reactor of `builder`, within 30 s; returns the reason and what the
/// reactor counted meanwhile.
pub fn counted<F: std::future::Future<Output = ()>>(
    builder: Builder,
    work: impl FnOnce() -> F,
) -> (String, MetricsSnapshot) {
    builder.reactors(1).pool_threads(1).block_on(async {
        runtime::time::timeout(Duration::from_secs(30), async {
            let before = totals();
            work().await;
            let reason = runtime::running_backend()
                .expect("backend")
                .reason()
                .to_string();
            (reason, totals().since(&before))
        })
        .await
        .expect("within 30 s")
    })
}

/// 64 connections echo 20 rounds of messages of uneven sizes at once on one reactor of
/// `builder`, each reply checked whole: a turn that reaps all their sends is a busy one.
/// `serve` echoes a connection's server side; `round_trips` sends each of its messages on the
/// client side and returns the replies, in order. Returns the reason and the counters.
pub fn echoes_at_once<S, C>(
    builder: Builder,
    serve: fn(TcpStream) -> S,
    round_trips: fn(TcpStream, Vec<Vec<u8>>) -> C,
) -> (String, MetricsSnapshot)
where
    S: std::future::Future<Output = ()> + 'static,
    C: std::future::Future<Output = Vec<Vec<u8>>> + 'static,
{
    counted(builder, || echo_wave(0, serve, round_trips))
}

/// One wave of [`echoes_at_once`]: its connections' messages differ from every other wave's.
/// Returns once every server saw its client's end.
pub async fn echo_wave<S, C>(
    wave: usize,
    serve: fn(TcpStream) -> S,
    round_trips: fn(TcpStream, Vec<Vec<u8>>) -> C,
) where
    S: std::future::Future<Output = ()> + 'static,
    C: std::future::Future<Output = Vec<Vec<u8>>> + 'static,
{
    const CONNECTIONS: usize = 64;
    const ROUNDS: usize = 20;
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for c in 0..CONNECTIONS {
        let (client, server) = pair().await;
        servers.push(runtime::spawn(serve(server)));
        let messages: Vec<Vec<u8>> = (0..ROUNDS)
            .map(|round| {
                let id = (wave * CONNECTIONS + c) * ROUNDS + round;
                (0..1 + id * 37 % 300).map(|k| stream_byte(id, k)).collect()
            })
            .collect();
        let replies = runtime::spawn(round_trips(client, messages.clone()));
        clients.push((c, messages, replies));
    }
    for (c, messages, replies) in clients {
        let replies = replies.await.expect("client task");
        for (round, (got, message)) in replies.iter().zip(&messages).enumerate() {
            assert!(got == message, "wave {wave}, connection {c}, round {round}");
        }
        assert_eq!(replies.len(), messages.len(), "connection {c}");
    }
    for server in servers {
        server.await.expect("server task");
    }
}

/// [`echoes_at_once`]'s client side by owned writes and reads.
pub async fn owned_round_trips(stream: TcpStream, messages: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut replies = Vec::new();
    for message in messages {
        replies.push(
            write_and_read_back(&stream, message, 512, "the client")
                .await
                .1,
        );
    }
    replies
}

/// After a write of `stream_byte(stream, ..)` bytes to `server` was dropped while the kernel
/// could still hold its buffer: allocates `chunk`-byte buffers and scribbles on them (where
/// memory freed too early would be handed out), closes `client`, and reads what reaches `server`
/// until its end, checking each byte against the one written at its offset. Returns how many
/// arrived, and the scribbled memory (to be dropped only after the reads).
pub async fn scribble_and_read_what_arrived(
    client: TcpStream,
    server: &TcpStream,
    stream: usize,
    chunk: usize,
) -> (usize, Vec<Vec<u8>>) {
    let mut scribbled = Vec::new();
    for _ in 0..64 {
        runtime::yield_now().await;
        scribbled.push(vec![0xEEu8; chunk]);
    }
    drop(client);
    let mut at = 0;
    loop {
        let BufResult(res, b) =
            runtime::time::timeout(Duration::from_secs(30), server.read(vec![0u8; chunk]))
                .await
                .expect("the peer's bytes end");
        let n = res.expect("read");
        if n == 0 {
            break;
        }
        for (k, &byte) in b[..n].iter().enumerate() {
            assert_eq!(byte, stream_byte(stream, at + k), "byte {}", at + k);
        }
        at += n;
    }
    (at, scribbled)
}
