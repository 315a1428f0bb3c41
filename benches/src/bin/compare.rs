//! Runs our two backends and the peers (tokio `current_thread` and `multi_thread`, monoio with
//! its default ring and with `SINGLE_ISSUER | DEFER_TASKRUN`, a raw epoll loop) side by side
//! and prints ratios.
//!
//! ```text
//! cargo run --release -p benches --bin compare -- --quick
//! cargo run --release -p benches --bin compare            # the full matrix, writes docs/benchmarks.md
//! ```
//!
//! Each repeat starts every server (in a shuffled order) in its own process pinned to one core,
//! drives it from a client pinned to the other core (at a fixed offered rate, latency from the
//! scheduled send; or with a fixed number of requests in flight per connection; or churning
//! connections), and reads the server's CPU time from `/proc/<pid>/task/*/schedstat` and, for
//! ours, the runtime's counters. Ratios are taken per repeat between servers measured side by
//! side, then summarised as median (min-max). Syscalls per request come from a separate pass
//! under `perf stat`, which slows syscalls while it counts. `--quick` runs two workloads in
//! under three minutes; the full matrix takes about half an hour and writes its tables, plots
//! and the machine's description into `docs/benchmarks.md`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use benches::cpu::{self, process_cpu_time};
use benches::load::{run_load, LoadSpec, Mode};
use benches::progress::Progress;
use benches::report::{text_table, Counters, Sample, ServerResult, WorkloadResult};
use benches::servers::{serve, Protocol, ServerKind, ServerProcess};
use benches::syscalls::{self, SyscallCount};
use benches::writer;
use runtime::Backend;

const USAGE: &str = "usage: compare [--quick] [--repeats N] [--only TEXT] [--no-perf] [--no-write | --write-to FILE]
       compare --doctor   (what this machine's io_uring offers, and the backend a runtime would use)
       compare serve <server> <echo|http|hyper|udp> --cpu N [--work-us N]
       compare drive <addr> <rate> <connections> <seconds>   (load an already running server)
servers: ours-uring ours-epoll ours-<backend>+pool[/<wake>] tokio-ct tokio-mt monoio monoio-defer raw-epoll";

/// One workload of the matrix.
struct Workload {
    name: String,
    protocol: Protocol,
    connections: usize,
    mode: Mode,
    request: Vec<u8>,
    response_len: usize,
    work: Duration,
    servers: Vec<ServerKind>,
    /// The server the "cpu / reference" column divides by.
    reference: ServerKind,
}

fn echo(size: usize, connections: usize, mode: Mode) -> Workload {
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

fn http(connections: usize, depth: usize) -> Workload {
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
fn hyper(connections: usize, mode: Mode) -> Workload {
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
fn hyper_baseline(rate: u64) -> Workload {
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
fn udp(size: usize, sockets: usize, rate: u64) -> Workload {
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

/// The latency budgets of the curve, in microseconds (0: none).
const BUDGETS_US: [u32; 5] = [0, 25, 50, 100, 200];

/// Echo at `rate` on both backends with each latency budget, and the raw epoll loop (the floor
/// the budget is measured against).
fn budget_curve(rate: u64) -> Workload {
    let mut w = echo(64, 100, Mode::Open { rate });
    w.name = format!("latency budget: echo 64 B, 100 conns, open loop {rate}/s");
    w.servers = [Backend::Uring, Backend::Epoll]
        .into_iter()
        .flat_map(|b| BUDGETS_US.map(|us| ServerKind::ours_budget(b, us)))
        .chain([ServerKind::RawEpoll])
        .collect();
    w.reference = ServerKind::RawEpoll;
    w
}

/// Inline against offloaded, and every wake strategy, at `rate` with `work` per request.
fn offload(rate: u64, work: Duration) -> Workload {
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

struct Plan {
    quick: bool,
    repeats: usize,
    workloads: Vec<Workload>,
    warmup: Duration,
    measure: Duration,
    /// Measured window of the `perf` pass (`None`: no pass).
    perf_window: Option<Duration>,
    /// Where the report goes, if anywhere.
    write_to: Option<PathBuf>,
}

fn full_matrix() -> Vec<Workload> {
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
    w
}

fn parse_plan(args: &[String]) -> Result<Plan, String> {
    let (mut quick, mut repeats, mut only, mut perf) = (false, None, None, true);
    let (mut write, mut write_to) = (true, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--quick" => quick = true,
            "--repeats" => repeats = Some(value()?.parse().map_err(|e| format!("--repeats: {e}"))?),
            "--only" => only = Some(value()?.clone()),
            "--no-perf" => perf = false,
            "--no-write" => write = false,
            "--write-to" => write_to = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let mut workloads = if quick {
        let mut fixed_rate = echo(64, 100, Mode::Open { rate: 50_000 });
        // One line with the latency budget on.
        fixed_rate
            .servers
            .insert(1, ServerKind::ours_budget(Backend::Uring, 50));
        vec![fixed_rate, http(16, 16)]
    } else {
        full_matrix()
    };
    if let Some(only) = &only {
        workloads.retain(|w| w.name.contains(only.as_str()));
    }
    let plan = Plan {
        quick,
        repeats: repeats.unwrap_or(3),
        workloads,
        warmup: Duration::from_millis(if quick { 500 } else { 1000 }),
        measure: Duration::from_secs(if quick { 2 } else { 3 }),
        perf_window: perf.then(|| Duration::from_millis(if quick { 800 } else { 1500 })),
        // A partial or quick run never overwrites the recorded full one unless told where.
        write_to: match write_to {
            Some(path) => Some(path),
            None => (write && !quick && only.is_none()).then(|| docs_dir().join("benchmarks.md")),
        },
    };
    if plan.repeats == 0 || plan.workloads.is_empty() {
        return Err("nothing to run: repeats must be non-zero and --only must match".into());
    }
    Ok(plan)
}

/// A deterministic shuffle (xorshift), different per repeat, so no server always runs first.
fn shuffled(kinds: &[ServerKind], seed: u64) -> Vec<ServerKind> {
    let mut v = kinds.to_vec();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn spec(w: &Workload, addr: std::net::SocketAddr, warmup: Duration, measure: Duration) -> LoadSpec {
    LoadSpec {
        addr,
        connections: w.connections,
        mode: w.mode,
        request: w.request.clone(),
        response_len: w.response_len,
        warmup,
        measure,
    }
}

fn counters_between(
    before: Option<std::collections::HashMap<String, u64>>,
    after: Option<std::collections::HashMap<String, u64>>,
) -> Option<Counters> {
    let (before, after) = (before?, after?);
    let d = |k: &str| {
        after
            .get(k)
            .copied()
            .unwrap_or(0)
            .saturating_sub(before.get(k).copied().unwrap_or(0))
    };
    Some(Counters {
        driver_waits: d("driver_waits"),
        handoffs: d("handoffs"),
        wakes_written: d("wakes_written"),
    })
}

fn measure(kind: ServerKind, w: &Workload, plan: &Plan, server_cpu: usize) -> io::Result<Sample> {
    let server = ServerProcess::start(kind, w.protocol, w.work, server_cpu)?;
    let load = spec(w, server.addr, plan.warmup, plan.measure);
    let pid = server.pid();
    // The CPU and counter window is the load's measured window: sample its start from a
    // helper thread while the client runs.
    let (before, result, after) = std::thread::scope(|scope| {
        let before = scope.spawn(|| {
            std::thread::sleep(plan.warmup);
            io::Result::Ok((process_cpu_time(pid)?, server.metrics(kind)?))
        });
        let result = run_load(&load);
        let after = (|| io::Result::Ok((process_cpu_time(pid)?, server.metrics(kind)?)))();
        let before = before
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("sampler panicked")));
        (before, result, after)
    });
    let (result, (cpu_before, m_before), (cpu_after, m_after)) = (result?, before?, after?);
    drop(server);
    let completed = result.completed.max(1);
    Ok(Sample {
        cpu_per_request: (cpu_after - cpu_before) / completed as u32,
        mean_us: result.latency_us.mean(),
        p50_us: result.latency_us.value_at_quantile(0.50),
        p99_us: result.latency_us.value_at_quantile(0.99),
        p999_us: result.latency_us.value_at_quantile(0.999),
        throughput: result.completed as f64 / result.window.as_secs_f64(),
        completed: result.completed,
        client_saturated: result.client_saturated,
        counters: counters_between(m_before, m_after),
    })
}

/// Syscalls per request of `kind` on `w`, counted by `perf` over a short run of its own.
fn count_syscalls(kind: ServerKind, w: &Workload, window: Duration, cpu: usize) -> io::Result<f64> {
    let server = ServerProcess::start(kind, w.protocol, w.work, cpu)?;
    let counter = SyscallCount::attach(server.pid())?;
    let result = run_load(&spec(w, server.addr, Duration::from_millis(200), window));
    let count = counter.finish()?;
    Ok(count as f64 / result?.completed_total.max(1) as f64)
}

fn run(plan: &Plan) -> io::Result<()> {
    let cpus = cpu::online_cpus();
    let (server_cpu, client_cpu) = (0, if cpus > 1 { 1 } else { 0 });
    cpu::pin_to(client_cpu)?;
    let perf = match (plan.perf_window, syscalls::available()) {
        (Some(window), Ok(())) => Some(window),
        (Some(_), Err(why)) => {
            eprintln!("syscalls per request not counted: {why}");
            None
        }
        (None, _) => None,
    };
    println!(
        "server on cpu {server_cpu}, client on cpu {client_cpu}; {} repeats of {:?} after {:?} warm-up; \
         ratios are paired per repeat: median (min-max)",
        plan.repeats, plan.measure, plan.warmup
    );
    let per_run = plan.warmup + plan.measure + Duration::from_millis(300);
    let per_perf_run = perf.map_or(Duration::ZERO, |w| w + Duration::from_millis(800));
    let runs: usize = plan.workloads.iter().map(|w| w.servers.len()).sum();
    let latency_cases = if plan.quick {
        0
    } else {
        benches::wake_latency::cases().len()
    };
    let mut progress = Progress::new(
        per_run * (runs * plan.repeats) as u32
            + per_perf_run * runs as u32
            + writer::WAKE_LATENCY_COST * latency_cases as u32,
    );
    let mut results = Vec::new();
    for (wi, w) in plan.workloads.iter().enumerate() {
        let mut servers: Vec<ServerResult> = w
            .servers
            .iter()
            .map(|k| ServerResult {
                name: k.name(),
                ours: k.is_ours(),
                samples: Vec::new(),
                syscalls_per_request: None,
            })
            .collect();
        for repeat in 0..plan.repeats {
            for kind in shuffled(&w.servers, (repeat * 31 + wi) as u64) {
                let i = w.servers.iter().position(|k| *k == kind).expect("listed");
                progress.start(&format!(
                    "{} | repeat {}/{} | {}",
                    w.name,
                    repeat + 1,
                    plan.repeats,
                    kind.name()
                ));
                servers[i].samples.push(measure(kind, w, plan, server_cpu)?);
                progress.finish(per_run);
            }
        }
        if let Some(window) = perf {
            for (i, kind) in w.servers.iter().enumerate() {
                progress.start(&format!("{} | syscalls | {}", w.name, kind.name()));
                servers[i].syscalls_per_request =
                    Some(count_syscalls(*kind, w, window, server_cpu)?);
                progress.finish(per_perf_run);
            }
        }
        progress.clear();
        let result = WorkloadResult {
            name: w.name.clone(),
            open: matches!(w.mode, Mode::Open { .. } | Mode::Datagrams { .. }),
            bytes_per_request: w.request.len(),
            reference: w.reference.name(),
            servers,
        };
        println!("\n{}\n{}", result.title(), text_table(&result.rows()));
        results.push(result);
    }
    let latencies = if plan.quick {
        Vec::new()
    } else {
        let l = writer::measure_wake_latency(&mut progress)?;
        progress.clear();
        println!("\n{}", text_table(&writer::wake_latency_rows(&l)));
        l
    };
    if let Some(doc) = &plan.write_to {
        writer::write_report(doc, plan.repeats, plan.measure, &results, &latencies)?;
        println!("\nwrote {} and its plots", doc.display());
    }
    Ok(())
}

/// The repository's `docs/` (this crate's parent's).
fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .join("docs")
}

/// Loads a server started by hand (for profiling it): `drive <addr> <rate> <connections> <seconds>`.
fn drive(args: &[String]) -> io::Result<()> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, USAGE);
    let [addr, rate, connections, seconds] = args else {
        return Err(bad());
    };
    let load = LoadSpec {
        addr: addr.parse().map_err(|_| bad())?,
        connections: connections.parse().map_err(|_| bad())?,
        mode: Mode::Open {
            rate: rate.parse().map_err(|_| bad())?,
        },
        request: vec![b'x'; 64],
        response_len: 64,
        warmup: Duration::from_millis(200),
        measure: Duration::from_secs(seconds.parse().map_err(|_| bad())?),
    };
    let r = run_load(&load)?;
    println!(
        "completed {} of {} sent; p50 {} us, p99 {} us{}",
        r.completed,
        r.sent,
        r.latency_us.value_at_quantile(0.5),
        r.latency_us.value_at_quantile(0.99),
        if r.client_saturated {
            " (client saturated)"
        } else {
            ""
        }
    );
    Ok(())
}

/// `serve <server> <protocol> --cpu N [--work-us N]`.
fn serve_command(args: &[String]) -> io::Result<()> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, USAGE);
    let kind = args.first().and_then(|k| ServerKind::from_name(k));
    let protocol = args.get(1).and_then(|p| Protocol::from_name(p));
    let (mut cpu, mut work) = (None, Duration::ZERO);
    let mut it = args.iter().skip(2);
    while let Some(flag) = it.next() {
        let value: u64 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
        match flag.as_str() {
            "--cpu" => cpu = Some(value as usize),
            "--work-us" => work = Duration::from_micros(value),
            _ => return Err(bad()),
        }
    }
    match (kind, protocol, cpu) {
        (Some(kind), Some(protocol), Some(cpu)) => serve(kind, protocol, work, cpu),
        _ => Err(bad()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("serve") => serve_command(&args[1..]),
        Some("drive") => drive(&args[1..]),
        Some("--doctor") => {
            print!("{}", runtime::doctor());
            Ok(())
        }
        _ => match parse_plan(&args) {
            Ok(plan) => run(&plan),
            Err(e) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{e}\n{USAGE}"),
            )),
        },
    };
    if let Err(e) = res {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
