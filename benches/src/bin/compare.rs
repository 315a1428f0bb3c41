//! The command line of the harness: runs our two backends and the peers (tokio `current_thread`
//! and `multi_thread`, monoio with its default ring and with `SINGLE_ISSUER | DEFER_TASKRUN`, a
//! raw epoll loop) side by side and prints ratios. The parts live in the library: the servers by
//! family (`servers/`), the load client (`client/`), the workloads (`workloads.rs`), the run
//! (`run.rs`), and the report with its plots and the ablation table (`report/`).
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
//! side, then summarised as median (min-max). Syscalls per request come from separate passes
//! under `perf stat`, which slows syscalls while it counts: one per repeat, counting only
//! while the client's measured window is open (perf's control fifos), the median reported.
//! `--quick` runs two workloads in a few minutes; the full matrix takes over an hour and writes
//! its tables, plots, the ablation table and the machine's description into
//! `docs/benchmarks.md`; `--only ablation` runs and writes the ablation table alone.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use benches::client::{run_load, LoadSpec, Mode};
use benches::run::{run, Plan, Section};
use benches::servers::{serve, Protocol, ServerKind};
use benches::workloads;
use runtime::Backend;

const USAGE: &str = "usage: compare [--quick] [--repeats N] [--only TEXT] [--no-perf] [--no-write | --write-to FILE]
       compare --doctor   (what this machine's io_uring offers, and the backend a runtime would use)
       compare serve <server> <echo|http|hyper|udp> --cpu N [--work-us N]
       compare drive <addr> <rate|closed[:depth]|churn> <connections> <seconds>   (load an already running server)
servers: ours-uring ours-epoll ours-<backend>+pool[/<wake>] tokio-ct tokio-mt monoio monoio-defer raw-epoll
         ours-<backend>~<N>us (a latency budget), ours-uring!<fast path> (switched off)
--only ablation: each io_uring fast path off and on; --only \"latency budget\": the budget curve
         (each written into its own section of docs/benchmarks.md)";

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
    let (all, mut workloads) = if quick {
        let mut fixed_rate = workloads::echo(64, 100, Mode::Open { rate: 50_000 });
        // One line with the latency budget on.
        fixed_rate
            .servers
            .insert(1, ServerKind::ours_budget(Backend::Uring, 50));
        (Vec::new(), vec![fixed_rate, workloads::http(16, 16)])
    } else {
        let all = workloads::full_matrix();
        (all.clone(), all)
    };
    if let Some(only) = &only {
        workloads.retain(|w| w.name.contains(only.as_str()));
    }
    // A partial or quick run never overwrites the recorded full one unless told where; it
    // writes the sections whose every workload it ran.
    let explicit = write_to.is_some();
    let doc = write_to.or_else(|| (write && !quick).then(|| docs_dir().join("benchmarks.md")));
    let plan = Plan {
        quick,
        repeats: repeats.unwrap_or(3),
        sections: Section::complete_in(&all, &workloads),
        workloads,
        warmup: Duration::from_millis(if quick { 500 } else { 1000 }),
        measure: Duration::from_secs(if quick { 2 } else { 3 }),
        perf_window: perf.then(|| Duration::from_millis(if quick { 800 } else { 1500 })),
        write_to: doc.clone().filter(|_| explicit || only.is_none()),
        sections_to: doc,
    };
    if plan.repeats == 0 || plan.workloads.is_empty() {
        return Err("nothing to run: repeats must be non-zero and --only must match".into());
    }
    Ok(plan)
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
        mode: match rate.strip_prefix("closed") {
            _ if rate == "churn" => Mode::Churn,
            Some("") => Mode::Closed { depth: 1 },
            Some(depth) => Mode::Closed {
                depth: depth.trim_start_matches(':').parse().map_err(|_| bad())?,
            },
            None => Mode::Open {
                rate: rate.parse().map_err(|_| bad())?,
            },
        },
        request: vec![b'x'; 64],
        response_len: 64,
        warmup: Duration::from_millis(200),
        measure: Duration::from_secs(seconds.parse().map_err(|_| bad())?),
        on_window: None,
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
