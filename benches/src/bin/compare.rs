//! Runs our two backends and the peer runtimes side by side and prints ratios.
//!
//! ```text
//! cargo run --release -p benches --bin compare -- --quick
//! ```
//!
//! Each repeat starts every server (in a shuffled order) in its own process pinned to one core,
//! drives it from a client pinned to the other core at a fixed offered rate, and reads the
//! server's CPU time from `/proc/<pid>/task/*/schedstat`. Ratios are taken per repeat between
//! servers measured minutes apart at most, then summarised as median (min-max).

use std::io;
use std::time::Duration;

use benches::cpu::{self, process_cpu_time};
use benches::load::{run_open_loop, OpenLoop};
use benches::report::{median, paired_ratios, ratio_cell, Sample};
use benches::servers::{serve, ServerKind, ServerProcess};

const USAGE: &str = "usage: compare [--quick] [--repeats N] [--rates R1,R2,...] [--connections N]
       compare serve <ours-uring|ours-epoll|tokio-ct> --cpu N
       compare drive <addr> <rate> <connections> <seconds>   (load an already running server)";

struct Plan {
    repeats: usize,
    rates: Vec<u64>,
    connections: usize,
    warmup: Duration,
    measure: Duration,
}

fn parse_plan(args: &[String]) -> Result<Plan, String> {
    let mut plan = Plan {
        repeats: 5,
        rates: vec![10_000, 50_000, 100_000],
        connections: 100,
        warmup: Duration::from_secs(1),
        measure: Duration::from_secs(4),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--quick" => {
                plan.repeats = 3;
                plan.rates = vec![50_000];
                plan.warmup = Duration::from_millis(500);
                plan.measure = Duration::from_secs(2);
            }
            "--repeats" => {
                plan.repeats = value()?.parse().map_err(|e| format!("--repeats: {e}"))?
            }
            "--connections" => {
                plan.connections = value()?
                    .parse()
                    .map_err(|e| format!("--connections: {e}"))?
            }
            "--rates" => {
                plan.rates = value()?
                    .split(',')
                    .map(|r| r.parse().map_err(|e| format!("--rates {r}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if plan.repeats == 0 || plan.rates.is_empty() || plan.connections == 0 {
        return Err("repeats, rates and connections must be non-zero".into());
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

fn measure(kind: ServerKind, plan: &Plan, rate: u64, server_cpu: usize) -> io::Result<Sample> {
    let server = ServerProcess::start(kind, server_cpu, &[])?;
    let cfg = OpenLoop {
        addr: server.addr,
        connections: plan.connections,
        rate,
        size: 64,
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
        throughput: result.completed as f64 / result.window.as_secs_f64(),
        client_saturated: result.client_saturated,
    })
}

fn run(plan: &Plan) -> io::Result<()> {
    let cpus = cpu::online_cpus();
    let (server_cpu, client_cpu) = (0, if cpus > 1 { 1 } else { 0 });
    cpu::pin_to(client_cpu)?;
    println!(
        "echo 64 B, open loop, {} connections; server on cpu {server_cpu}, client on cpu {client_cpu}; {} repeats of {:?} after {:?} warm-up",
        plan.connections, plan.repeats, plan.measure, plan.warmup
    );
    let kinds = ServerKind::ALL;
    for &rate in &plan.rates {
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); kinds.len()];
        for repeat in 0..plan.repeats {
            for kind in shuffled(&kinds, repeat as u64 + rate) {
                let i = kinds.iter().position(|k| *k == kind).expect("listed");
                eprint!(
                    "\rrate {rate}/s repeat {}/{} {:<12}",
                    repeat + 1,
                    plan.repeats,
                    kind.name()
                );
                samples[i].push(measure(kind, plan, rate, server_cpu)?);
            }
        }
        eprintln!();
        print_table(rate, &kinds, &samples);
    }
    Ok(())
}

fn print_table(rate: u64, kinds: &[ServerKind], samples: &[Vec<Sample>]) {
    let cpu_us = |s: &[Sample]| -> Vec<f64> {
        s.iter()
            .map(|x| x.cpu_per_request.as_secs_f64() * 1e6)
            .collect()
    };
    let tokio = kinds
        .iter()
        .position(|k| *k == ServerKind::TokioCurrentThread)
        .expect("tokio is in the matrix");
    let epoll = kinds
        .iter()
        .position(|k| *k == ServerKind::OursEpoll)
        .expect("epoll is in the matrix");
    println!("\noffered {rate} req/s");
    println!(
        "{:<12} {:>14} {:>9} {:>9} {:>11} {:>20} {:>20}",
        "server", "cpu us/req", "p50 us", "p99 us", "req/s", "cpu vs tokio-ct", "cpu vs ours-epoll"
    );
    for (i, kind) in kinds.iter().enumerate() {
        let s = &samples[i];
        let med = |f: fn(&Sample) -> f64| median(&s.iter().map(f).collect::<Vec<_>>());
        let saturated = s.iter().any(|x| x.client_saturated);
        println!(
            "{:<12} {:>14.2} {:>9.0} {:>9.0} {:>11.0} {:>20} {:>20}{}",
            kind.name(),
            median(&cpu_us(s)),
            med(|x| x.p50_us as f64),
            med(|x| x.p99_us as f64),
            med(|x| x.throughput),
            ratio_cell(&paired_ratios(&cpu_us(s), &cpu_us(&samples[tokio]))),
            ratio_cell(&paired_ratios(&cpu_us(s), &cpu_us(&samples[epoll]))),
            if saturated {
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
        rate: rate.parse().map_err(|_| bad())?,
        connections: connections.parse().map_err(|_| bad())?,
        size: 64,
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
        let cpu = match (args.get(2).map(String::as_str), args.get(3)) {
            (Some("--cpu"), Some(n)) => n.parse().ok(),
            _ => None,
        };
        match (kind, cpu) {
            (Some(kind), Some(cpu)) => serve(kind, cpu),
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
