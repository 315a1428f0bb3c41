//! The workloads: what each sends, how, to which servers, and which server the ratio column
//! divides by.

use std::time::Duration;

use runtime::Backend;

use crate::client::Mode;
use crate::report::budget_curve::{self, BUDGETS_US};
use crate::servers::{Protocol, ServerKind};

/// One workload of the matrix.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    pub protocol: Protocol,
    pub connections: usize,
    pub mode: Mode,
    pub request: Vec<u8>,
    pub response_len: usize,
    pub work: Duration,
    pub servers: Vec<ServerKind>,
    /// The server the "cpu / reference" column divides by.
    pub reference: ServerKind,
}

/// Echo of `size`-byte messages over `connections`, against every peer.
pub fn echo(size: usize, connections: usize, mode: Mode) -> Workload {
    let name = match mode {
        Mode::Open { rate } => format!("echo {size} B, {connections} conns, open loop {rate}/s"),
        Mode::Closed { depth: 1 } => format!("echo {size} B, {connections} conns, closed loop"),
        Mode::Closed { depth } => {
            format!("echo {size} B, {connections} conns, pipelined depth {depth}")
        }
        Mode::Churn => format!("churn: echo {size} B on a new connection, {connections} at once"),
        Mode::Datagrams { .. } => unreachable!("UDP workloads are made by `udp`"),
    };
    Workload {
        name,
        protocol: Protocol::Echo,
        connections,
        mode,
        request: vec![b'x'; size],
        response_len: size,
        work: Duration::ZERO,
        servers: ServerKind::STANDARD.to_vec(),
        reference: ServerKind::ours(Backend::Epoll),
    }
}

/// The HTTP plaintext example, pipelined `depth` deep.
pub fn http(connections: usize, depth: usize) -> Workload {
    Workload {
        name: format!("http plaintext, {connections} conns, pipelining depth {depth}"),
        protocol: Protocol::Http,
        connections,
        mode: Mode::Closed { depth },
        request: b"GET /plaintext HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec(),
        response_len: examples::http::HELLO.len(),
        work: Duration::ZERO,
        servers: ServerKind::STANDARD.to_vec(),
        reference: ServerKind::ours(Backend::Epoll),
    }
}

/// The servers of the hyper workloads: the same hyper service on both our backends (through
/// `runtime::compat`) and on tokio `current_thread` (hyper-util's tokio glue).
const HYPER_SERVERS: [ServerKind; 3] = [
    ServerKind::ours(Backend::Uring),
    ServerKind::ours(Backend::Epoll),
    ServerKind::TokioCurrentThread,
];

/// hyper's `GET /` at a fixed rate or pipelined; the ratio column is to tokio.
pub fn hyper(connections: usize, mode: Mode) -> Workload {
    let name = match mode {
        Mode::Open { rate } => format!("hyper: GET /, {connections} conns, open loop {rate}/s"),
        Mode::Closed { depth } => {
            format!("hyper: GET /, {connections} conns, pipelining depth {depth}")
        }
        Mode::Churn | Mode::Datagrams { .. } => unreachable!("no such hyper workload"),
    };
    Workload {
        name,
        protocol: Protocol::Hyper,
        connections,
        mode,
        request: b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec(),
        response_len: examples::hyper_app::HELLO_RESPONSE_LEN,
        work: Duration::ZERO,
        servers: HYPER_SERVERS.to_vec(),
        reference: ServerKind::TokioCurrentThread,
    }
}

/// The native HTTP example at the hyper workload's rate: what hyper and the compat layer cost
/// on top of it.
pub fn hyper_baseline(rate: u64) -> Workload {
    let mut w = http(100, 1);
    w.name = format!("hyper baseline: the native http example, 100 conns, open loop {rate}/s");
    w.mode = Mode::Open { rate };
    w.servers = HYPER_SERVERS.to_vec();
    w.reference = ServerKind::TokioCurrentThread;
    w
}

/// The servers of the UDP workloads: the `udp_echo` example's code on both our backends (also
/// with a 50 us latency budget, since a UDP server at a fixed rate wakes for nearly every
/// datagram), and the same loop on tokio `current_thread`.
const UDP_SERVERS: [ServerKind; 5] = [
    ServerKind::ours(Backend::Uring),
    ServerKind::ours_budget(Backend::Uring, 50),
    ServerKind::ours(Backend::Epoll),
    ServerKind::ours_budget(Backend::Epoll, 50),
    ServerKind::TokioCurrentThread,
];

/// UDP echo of `size`-byte datagrams at `rate` over `sockets` client sockets; the ratio column
/// is to tokio.
pub fn udp(size: usize, sockets: usize, rate: u64) -> Workload {
    Workload {
        name: format!("udp echo {size} B, {sockets} sockets, open loop {rate}/s"),
        protocol: Protocol::Udp,
        connections: sockets,
        mode: Mode::Datagrams { rate },
        request: vec![b'u'; size],
        response_len: size,
        work: Duration::ZERO,
        servers: UDP_SERVERS.to_vec(),
        reference: ServerKind::TokioCurrentThread,
    }
}

/// Echo at `rate` on both backends with each latency budget, and the raw epoll loop (the floor
/// the budget is measured against).
pub fn budget_curve(rate: u64) -> Workload {
    let mut w = echo(64, 100, Mode::Open { rate });
    w.name = format!(
        "{}echo 64 B, 100 conns, open loop {rate}/s",
        budget_curve::PREFIX
    );
    w.servers = [Backend::Uring, Backend::Epoll]
        .into_iter()
        .flat_map(|b| BUDGETS_US.map(|us| ServerKind::ours_budget(b, us)))
        .chain([ServerKind::RawEpoll])
        .collect();
    w.reference = ServerKind::RawEpoll;
    w
}

/// Inline against offloaded, and every wake strategy, at `rate` with `work` per request.
pub fn offload(rate: u64, work: Duration) -> Workload {
    let mut w = echo(64, 100, Mode::Open { rate });
    w.name = format!(
        "offload: echo 64 B + {} us of work, 100 conns, open loop {rate}/s",
        work.as_micros()
    );
    w.work = work;
    w.servers = ServerKind::offload_matrix();
    w.reference = ServerKind::ours_offload(Backend::Epoll, None);
    w
}

/// The ablation: on io_uring, each fast path switched from its default (`ours-uring!<path>`)
/// and the latency budget switched on, each at the workloads where it should matter; the ratio
/// is to the default server (`report::ablation`).
pub fn ablation() -> Vec<Workload> {
    let on = ServerKind::ours(Backend::Uring);
    let budget = ServerKind::ours_budget(Backend::Uring, 200);
    let entries = [on.flipped("registered-ring-fd"), on.flipped("no-sqarray")];
    let receive = on.flipped("multishot-receive");
    let late = on.flipped("late-receive");
    let bundle = on.flipped("receive-bundle");
    let zero_copy = on.flipped("zero-copy-send");
    let incremental = on.flipped("incremental-buffers");
    let direct = on.flipped("direct-descriptors");
    let mut fixed = echo(64, 100, Mode::Open { rate: 50_000 });
    fixed.servers = [on]
        .into_iter()
        .chain(entries)
        .chain([receive, late, direct, budget, budget.flipped("min-wait")])
        .collect();
    let mut closed = echo(64, 100, Mode::Closed { depth: 1 });
    closed.servers = [on]
        .into_iter()
        .chain(entries)
        .chain([receive, late, direct])
        .collect();
    let mut many = echo(64, 1000, Mode::Closed { depth: 1 });
    many.servers = vec![on, receive, late, bundle, incremental, direct];
    let mut pipelined = echo(64, 16, Mode::Closed { depth: 16 });
    pipelined.servers = vec![on, late, bundle, incremental];
    let mut stream = echo(64 * 1024, 4, Mode::Closed { depth: 4 });
    stream.name = "streaming 64 KiB over 4 conns, 4 in flight each".into();
    stream.servers = vec![on, receive, late, bundle, incremental, zero_copy];
    let mut stream_16k = echo(16 * 1024, 4, Mode::Closed { depth: 4 });
    stream_16k.name = "streaming 16 KiB over 4 conns, 4 in flight each".into();
    stream_16k.servers = vec![on, zero_copy];
    // Late receives where reads go through the poll-based adapter (hyper) and through owned
    // reads of a request parser (the native HTTP example), with enough connections to be busy.
    let mut http = http(256, 1);
    http.servers = vec![on, receive, late];
    let mut hyper = hyper(256, Mode::Closed { depth: 1 });
    hyper.servers = vec![on, receive, late];
    // Short connections never get a slot in the file table: what direct descriptors cost them.
    let mut churn = echo(64, 16, Mode::Churn);
    churn.servers = vec![on, direct];
    let mut all = vec![
        fixed, closed, many, pipelined, stream, stream_16k, http, hyper, churn,
    ];
    for w in &mut all {
        w.name = format!("{}{}", crate::report::ablation::PREFIX, w.name);
        w.reference = on;
    }
    all
}

/// Every workload of the full run.
pub fn full_matrix() -> Vec<Workload> {
    let mut w: Vec<Workload> = [10_000, 50_000, 100_000]
        .into_iter()
        .map(|rate| echo(64, 100, Mode::Open { rate }))
        .collect();
    for size in [64, 1024] {
        for conns in [1, 16, 100, 1000] {
            w.push(echo(size, conns, Mode::Closed { depth: 1 }));
        }
    }
    w.push(echo(64, 16, Mode::Closed { depth: 16 }));
    let mut stream = echo(64 * 1024, 4, Mode::Closed { depth: 4 });
    stream.name = "streaming: 64 KiB messages echoed over 4 conns, 4 in flight each".into();
    w.push(stream);
    w.push(http(16, 16));
    w.push(http(256, 1));
    w.push(echo(64, 16, Mode::Churn));
    w.push(offload(50_000, Duration::ZERO));
    w.push(offload(20_000, Duration::from_micros(10)));
    w.push(hyper(100, Mode::Open { rate: 50_000 }));
    w.push(hyper(16, Mode::Closed { depth: 16 }));
    w.push(hyper_baseline(50_000));
    w.push(udp(64, 16, 50_000));
    w.push(udp(1024, 16, 50_000));
    for rate in [10_000, 50_000, 100_000] {
        w.push(budget_curve(rate));
    }
    w.extend(ablation());
    w
}
