//! Runs our two backends and the peers (tokio `current_thread` and `multi_thread`, a raw epoll
//! loop) side by side and prints ratios.
//!
//! ```text
//! cargo run --release -p benches --bin compare -- --quick
//! ```
//!
//! Each repeat starts every server (in a shuffled order) in its own process pinned to one core,
//! drives it from a client pinned to the other core, either at a fixed offered rate (open loop,
//! latency from the scheduled send) or with a fixed number of requests in flight per connection
//! (closed loop, pipelining when more than one), and reads the server's CPU time from
//! `/proc/<pid>/task/*/schedstat`. Ratios are taken per repeat between servers measured side by
//! side, then summarised as median (min-max). `--quick` runs two workloads in about 75 seconds;
//! without it, the full matrix (echo at 10k/50k/100k req/s, echo closed loop at 1/16/100/1000
//! connections, 1 KiB, pipelined echo, HTTP pipelined and at 256 connections).

use std::io;
use std::time::Duration;

use benches::cpu::{self, process_cpu_time};
use benches::load::{run_open_loop, Mode, OpenLoop};
use benches::report::{median, paired_ratios, ratio_cell, Sample};
use benches::servers::{serve, Protocol, ServerKind, ServerProcess};

const USAGE: &str = "usage: compare [--quick] [--repeats N] [--rates R1,R2,...]
       compare serve <server> <echo|http> --cpu N
       compare drive <addr> <rate> <connections> <seconds>   (load an already running server)
servers: ours-uring ours-epoll tokio-ct tokio-mt raw-epoll";

/// One workload of the matrix.
struct Workload {
    name: String,
    protocol: Protocol,
    connections: usize,
    mode: Mode,
    request: Vec<u8>,
    response_len: usize,
}

fn echo(size: usize, connections: usize, mode: Mode) -> Workload {
    let name = match mode {
        Mode::Open { rate } => format!("echo {size} B, {connections} conns, open loop {rate}/s"),
        Mode::Closed { depth } => {
            format!("echo {size} B, {connections} conns, closed loop depth {depth}")
        }
    };
    Workload {
        name,
        protocol: Protocol::Echo,
        connections,
        mode,
        request: vec![b'x'; size],
        response_len: size,
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
    }
}

struct Plan {
    repeats: usize,
    workloads: Vec<Workload>,
    warmup: Duration,
    measure: Duration,
}

fn parse_plan(args: &[String]) -> Result<Plan, String> {
    let mut quick = false;
    let mut repeats = None;
    let mut rates = vec![10_000, 50_000, 100_000];
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--quick" => quick = true,
            "--repeats" => repeats = Some(value()?.parse().map_err(|e| format!("--repeats: {e}"))?),
            "--rates" => {
                rates = value()?
                    .split(',')
                    .map(|r| r.parse().map_err(|e| format!("--rates {r}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let workloads = if quick {
        vec![echo(64, 100, Mode::Open { rate: 50_000 }), http(16, 16)]
    } else {
        let mut w: Vec<Workload> = rates
            .iter()
            .map(|&rate| echo(64, 100, Mode::Open { rate }))
            .collect();
        for conns in [1, 16, 100, 1000] {
            w.push(echo(64, conns, Mode::Closed { depth: 1 }));
        }
        w.push(echo(1024, 100, Mode::Closed { depth: 1 }));
        w.push(echo(64, 16, Mode::Closed { depth: 16 }));
        w.push(http(16, 16));
        w.push(http(256, 1));
        w
    };
    let plan = Plan {
        repeats: repeats.unwrap_or(if quick { 3 } else { 5 }),
        workloads,
        warmup: Duration::from_millis(if quick { 500 } else { 1000 }),
        measure: Duration::from_secs(if quick { 2 } else { 4 }),
    };
    if plan.repeats == 0 || rates.is_empty() {
        return Err("repeats and rates must be non-zero".into());
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

fn measure(kind: ServerKind, w: &Workload, plan: &Plan, server_cpu: usize) -> io::Result<Sample> {
    let server = ServerProcess::start(kind, w.protocol, server_cpu)?;
    let cfg = OpenLoop {
        addr: server.addr,
        connections: w.connections,
        mode: w.mode,
        request: w.request.clone(),
        response_len: w.response_len,
        warmup: plan.warmup,
        measure: plan.measure,
    };
    // The CPU window is the load's measured window: sample at its start from a helper thread.
    let pid = server.pid();
    let warmup = plan.warmup;
    let before = std::thread::spawn(move || {
        std::thread::sleep(warmup);
        process_cpu_time(pid)
    });
    let result = run_open_loop(&cfg)?;
    let after = process_cpu_time(pid)?;
    let before = before
        .join()
        .map_err(|_| io::Error::other("sampler panicked"))??;
    drop(server);
    let completed = result.completed.max(1);
    Ok(Sample {
        cpu_per_request: (after - before) / completed as u32,
        p50_us: result.latency_us.value_at_quantile(0.50),
        p99_us: result.latency_us.value_at_quantile(0.99),
        p999_us: result.latency_us.value_at_quantile(0.999),
        throughput: result.completed as f64 / result.window.as_secs_f64(),
        client_saturated: result.client_saturated,
    })
}

fn run(plan: &Plan) -> io::Result<()> {
    let cpus = cpu::online_cpus();
    let (server_cpu, client_cpu) = (0, if cpus > 1 { 1 } else { 0 });
    cpu::pin_to(client_cpu)?;
    println!(
        "server on cpu {server_cpu}, client on cpu {client_cpu}; {} repeats of {:?} after {:?} warm-up; \
         ratios are paired per repeat: median (min-max)",
        plan.repeats, plan.measure, plan.warmup
    );
    let kinds = ServerKind::ALL;
    let total = plan.workloads.len() * plan.repeats * kinds.len();
    let mut done = 0;
    for (wi, w) in plan.workloads.iter().enumerate() {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); kinds.len()];
        for repeat in 0..plan.repeats {
            for kind in shuffled(&kinds, (repeat * 31 + wi) as u64) {
                let i = kinds.iter().position(|k| *k == kind).expect("listed");
                done += 1;
                eprint!("\r[{done}/{total}] {:<60} {:<12}", w.name, kind.name());
                samples[i].push(measure(kind, w, plan, server_cpu)?);
            }
        }
        eprintln!();
        print_table(w, &kinds, &samples);
    }
    Ok(())
}

fn print_table(w: &Workload, kinds: &[ServerKind], samples: &[Vec<Sample>]) {
    let cpu_us = |s: &[Sample]| -> Vec<f64> {
        s.iter()
            .map(|x| x.cpu_per_request.as_secs_f64() * 1e6)
            .collect()
    };
    let rps = |s: &[Sample]| -> Vec<f64> { s.iter().map(|x| x.throughput).collect() };
    // The best peer: the cheapest per request for an open loop, the fastest for a closed one.
    let open = matches!(w.mode, Mode::Open { .. });
    let best_peer = (0..kinds.len())
        .filter(|&i| !kinds[i].is_ours())
        .min_by(|&a, &b| {
            let key = |i: usize| {
                if open {
                    median(&cpu_us(&samples[i]))
                } else {
                    -median(&rps(&samples[i]))
                }
            };
            key(a).total_cmp(&key(b))
        })
        .expect("peers in the matrix");
    let epoll = kinds
        .iter()
        .position(|k| *k == ServerKind::OursEpoll)
        .expect("epoll in the matrix");
    println!("\n{} (best peer: {})", w.name, kinds[best_peer].name());
    println!(
        "{:<11} {:>9} {:>9} {:>7} {:>7} {:>8} {:>18} {:>18} {:>18}",
        "server",
        "req/s",
        "cpu us",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "cpu / best peer",
        "cpu / ours-epoll",
        "req/s / best peer"
    );
    for (i, kind) in kinds.iter().enumerate() {
        let s = &samples[i];
        let med = |f: fn(&Sample) -> f64| median(&s.iter().map(f).collect::<Vec<_>>());
        println!(
            "{:<11} {:>9.0} {:>9.2} {:>7.0} {:>7.0} {:>8.0} {:>18} {:>18} {:>18}{}",
            kind.name(),
            med(|x| x.throughput),
            median(&cpu_us(s)),
            med(|x| x.p50_us as f64),
            med(|x| x.p99_us as f64),
            med(|x| x.p999_us as f64),
            ratio_cell(&paired_ratios(&cpu_us(s), &cpu_us(&samples[best_peer]))),
            ratio_cell(&paired_ratios(&cpu_us(s), &cpu_us(&samples[epoll]))),
            ratio_cell(&paired_ratios(&rps(s), &rps(&samples[best_peer]))),
            if s.iter().any(|x| x.client_saturated) {
                "  (client saturated)"
            } else {
                ""
            },
        );
    }
}

/// Loads a server started by hand (for profiling it): `drive <addr> <rate> <connections> <seconds>`.
fn drive(args: &[String]) -> io::Result<()> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, USAGE);
    let [addr, rate, connections, seconds] = args else {
        return Err(bad());
    };
    let cfg = OpenLoop {
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
    let r = run_open_loop(&cfg)?;
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = if args.first().map(String::as_str) == Some("serve") {
        let kind = args.get(1).and_then(|k| ServerKind::from_name(k));
        let protocol = args.get(2).and_then(|p| Protocol::from_name(p));
        let cpu = match (args.get(3).map(String::as_str), args.get(4)) {
            (Some("--cpu"), Some(n)) => n.parse().ok(),
            _ => None,
        };
        match (kind, protocol, cpu) {
            (Some(kind), Some(protocol), Some(cpu)) => serve(kind, protocol, cpu),
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, USAGE)),
        }
    } else if args.first().map(String::as_str) == Some("drive") {
        drive(&args[1..])
    } else {
        match parse_plan(&args) {
            Ok(plan) => run(&plan),
            Err(e) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{e}\n{USAGE}"),
            )),
        }
    };
    if let Err(e) = res {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
