//! The full run's report: the generated part of `docs/benchmarks.md` (the machine, the article's
//! claims against our numbers, every table) and its SVG plots in `docs/plots/`.
//!
//! Only the text between the two marker lines is replaced, so the hand-written analysis around
//! it stays.

use std::io;
use std::path::Path;
use std::time::Duration;

use crate::progress::Progress;
use crate::report::svg::{Chart, Series};
use crate::report::{
    markdown_table, median, ratio_cell, replace_section, save_plot, WorkloadResult,
};
use crate::wake_latency::{cases, start};

/// Expected time of one wake-latency case, for the progress bar.
pub const WAKE_LATENCY_COST: Duration = Duration::from_secs(2);
/// Timed writes per wake-latency case.
const WAKE_LATENCY_WRITES: u64 = 1000;

/// One wake-latency case's write-to-arrival times.
#[derive(Debug, Clone)]
pub struct WakeLatency {
    /// The case (writer and strategy).
    pub name: &'static str,
    /// Median, microseconds.
    pub p50_us: f64,
    /// 99th percentile, microseconds.
    pub p99_us: f64,
}

/// Measures every wake-latency case (empty where io_uring is unavailable).
pub fn measure_wake_latency(progress: &mut Progress) -> io::Result<Vec<WakeLatency>> {
    if runtime::Builder::new()
        .backend(runtime::Backend::Uring)
        .build()
        .is_err()
    {
        eprintln!("wake latency not measured: io_uring is not available here");
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for (name, wake, writer) in cases() {
        progress.start(&format!("wake latency | {name}"));
        let mut run = start(wake, writer);
        let _warm = run(100);
        let mut us: Vec<f64> = run(WAKE_LATENCY_WRITES)
            .iter()
            .map(|d| d.as_secs_f64() * 1e6)
            .collect();
        us.sort_by(f64::total_cmp);
        let p99 = us[(us.len() * 99 / 100).min(us.len() - 1)];
        out.push(WakeLatency {
            name,
            p50_us: median(&us),
            p99_us: p99,
        });
        progress.finish(WAKE_LATENCY_COST);
    }
    Ok(out)
}

/// The wake-latency table.
pub fn wake_latency_rows(l: &[WakeLatency]) -> Vec<Vec<String>> {
    let inline = l
        .iter()
        .find(|x| x.name == "inline_owner")
        .map(|x| x.p50_us);
    let mut rows = vec![vec![
        "write from".to_string(),
        "p50 us".into(),
        "p99 us".into(),
        "p50 minus inline us".into(),
    ]];
    for x in l {
        rows.push(vec![
            x.name.to_string(),
            format!("{:.1}", x.p50_us),
            format!("{:.1}", x.p99_us),
            inline.map_or("-".into(), |i| format!("{:+.1}", x.p50_us - i)),
        ]);
    }
    rows
}

fn find<'a>(results: &'a [WorkloadResult], prefix: &str) -> Option<&'a WorkloadResult> {
    results.iter().find(|w| w.name.starts_with(prefix))
}

/// The paired ratios `ratio` takes from the workload named by `prefix`: their median and cell.
fn cell(
    results: &[WorkloadResult],
    prefix: &str,
    ratio: impl FnOnce(&WorkloadResult) -> Option<Vec<f64>>,
) -> Option<(f64, String)> {
    let r = ratio(find(results, prefix)?)?;
    Some((median(&r), ratio_cell(&r)))
}

/// `a / b` CPU per request in the workload named by `prefix`.
fn cpu_cell(results: &[WorkloadResult], prefix: &str, a: &str, b: &str) -> Option<(f64, String)> {
    cell(results, prefix, |w| w.cpu_ratio(a, b))
}

/// "faster" / "slower" / "the same within 5%" for a cost ratio (lower is better).
fn cost_verdict(ratio: f64) -> &'static str {
    if ratio < 0.95 {
        "cheaper"
    } else if ratio > 1.05 {
        "costlier"
    } else {
        "the same within 5%"
    }
}

/// "io_uring is cheaper (-7%)" for a CPU ratio of io_uring to epoll.
fn cost_text(ratio: f64) -> String {
    format!(
        "io_uring is {} ({:+.0}%)",
        cost_verdict(ratio),
        (ratio - 1.0) * 100.0
    )
}

/// The article's claims, each with the figure that tests it and what it says.
fn claims(results: &[WorkloadResult], latency: &[WakeLatency]) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "claim".to_string(),
        "measured as".into(),
        "median (min-max)".into(),
        "our numbers say".into(),
    ]];
    let mut push = |claim: &str,
                    what: String,
                    cell: Option<(f64, String)>,
                    verdict: &dyn Fn(f64) -> String| {
        if let Some((m, c)) = cell {
            rows.push(vec![claim.into(), what, c, verdict(m)]);
        }
    };
    for rate in [10_000, 50_000, 100_000] {
        let prefix = format!("echo 64 B, 100 conns, open loop {rate}/s");
        for (uring, epoll) in [("ours-uring", "ours-epoll"), ("monoio-defer", "tokio-ct")] {
            push(
                "io_uring is 5-10% faster than epoll (inline)",
                format!("CPU/request {uring} / {epoll}, {}k req/s", rate / 1000),
                cpu_cell(results, &prefix, uring, epoll),
                &cost_text,
            );
        }
    }
    for conns in [100, 1000] {
        push(
            "io_uring is 5-10% faster than epoll (inline)",
            format!("throughput ours-uring / ours-epoll, closed loop, {conns} conns"),
            cell(
                results,
                &format!("echo 64 B, {conns} conns, closed loop"),
                |w| w.rps_ratio("ours-uring", "ours-epoll"),
            ),
            &|m| format!("io_uring serves {:+.0}%", (m - 1.0) * 100.0),
        );
    }
    let offload = "offload: echo 64 B + 0 us";
    push(
        "with the handler on a pool, io_uring is as fast as epoll at best",
        "CPU/request ours-uring+pool / ours-epoll+pool, 50k req/s".into(),
        cpu_cell(results, offload, "ours-uring+pool", "ours-epoll+pool"),
        &cost_text,
    );
    push(
        "with the handler on a pool, io_uring is as fast as epoll at best",
        "CPU/request ours-uring+pool / ours-epoll+pool, 20k req/s, 10 us work".into(),
        cpu_cell(
            results,
            "offload: echo 64 B + 10 us",
            "ours-uring+pool",
            "ours-epoll+pool",
        ),
        &cost_text,
    );
    for (strategy, claim) in [
        ("eventfd", "an eventfd write per handoff costs"),
        ("timeout:1ms", "timeout polling instead of a wake costs"),
        ("sqpoll", "SQPOLL instead of a wake costs"),
    ] {
        push(
            claim,
            format!(
                "CPU/request ours-uring+pool/{strategy} / ours-uring+pool/eventfd-if-parked, 50k req/s"
            ),
            cpu_cell(
                results,
                offload,
                &format!("ours-uring+pool/{strategy}"),
                "ours-uring+pool/eventfd-if-parked",
            ),
            &|m| {
                format!(
                    "{:+.0}% CPU against waking only a parked reactor",
                    (m - 1.0) * 100.0
                )
            },
        );
    }
    let lat = |n: &str| latency.iter().find(|x| x.name == n).map(|x| x.p50_us);
    if let (Some(e), Some(i)) = (lat("eventfd_from_pool"), lat("inline_owner")) {
        rows.push(vec![
            "an eventfd write per handoff costs".into(),
            "write-to-arrival p50, pool thread to a sleeping reactor, minus inline".into(),
            format!("{:+.1} us", e - i),
            "the price of waking a parked reactor".into(),
        ]);
    }
    rows
}

fn open_rates(results: &[WorkloadResult]) -> Vec<(&'static str, &WorkloadResult)> {
    [("10k", 10_000), ("50k", 50_000), ("100k", 100_000)]
        .into_iter()
        .filter_map(|(label, rate)| {
            Some((
                label,
                find(
                    results,
                    &format!("echo 64 B, 100 conns, open loop {rate}/s"),
                )?,
            ))
        })
        .collect()
}

/// Writes the plots into `dir`; returns their markdown references.
fn plots(dir: &Path, results: &[WorkloadResult]) -> io::Result<String> {
    let mut md = String::new();
    let mut save = |file: &str, alt: &str, svg: String| -> io::Result<()> {
        md.push_str(&save_plot(dir, file, alt, &svg)?);
        Ok(())
    };
    let rates = open_rates(results);
    if let Some((_, first)) = rates.first() {
        let series = first
            .servers
            .iter()
            .map(|s| Series {
                name: s.name.clone(),
                values: rates
                    .iter()
                    .map(|(_, w)| w.server(&s.name).map_or(f64::NAN, |x| median(&x.cpu_us())))
                    .collect(),
            })
            .collect();
        let chart = Chart {
            title: "Server CPU per request, echo 64 B over 100 connections".into(),
            x_label: "offered rate (requests/s)".into(),
            y_label: "CPU microseconds per request".into(),
            categories: rates.iter().map(|(l, _)| l.to_string()).collect(),
            series,
            log_y: false,
        };
        save(
            "cpu_per_request.svg",
            "CPU per request against offered rate",
            chart.lines(),
        )?;
    }
    if let Some((_, w)) = rates.iter().find(|(l, _)| *l == "50k") {
        let pct = |name: &str, f: fn(&crate::report::Sample) -> u64| Series {
            name: name.into(),
            values: w.servers.iter().map(|s| s.med(|x| f(x) as f64)).collect(),
        };
        let chart = Chart {
            title: "Latency at 50k requests/s (echo 64 B, 100 connections)".into(),
            x_label: "server".into(),
            y_label: "microseconds (log scale)".into(),
            categories: w.servers.iter().map(|s| s.name.clone()).collect(),
            series: vec![
                pct("p50", |x| x.p50_us),
                pct("p99", |x| x.p99_us),
                pct("p99.9", |x| x.p999_us),
            ],
            log_y: true,
        };
        save(
            "latency_50k.svg",
            "latency percentiles at 50k requests/s",
            chart.bars(),
        )?;
    }
    let closed: Vec<(String, &WorkloadResult)> = [1, 16, 100, 1000]
        .into_iter()
        .filter_map(|c| {
            Some((
                c.to_string(),
                find(results, &format!("echo 64 B, {c} conns, closed loop"))?,
            ))
        })
        .collect();
    if let Some((_, first)) = closed.first() {
        let chart = Chart {
            title: "Closed-loop throughput, echo 64 B".into(),
            x_label: "connections".into(),
            y_label: "requests per second".into(),
            categories: closed.iter().map(|(c, _)| c.clone()).collect(),
            series: first
                .servers
                .iter()
                .map(|s| Series {
                    name: s.name.clone(),
                    values: closed
                        .iter()
                        .map(|(_, w)| {
                            w.server(&s.name)
                                .map_or(f64::NAN, |x| x.med(|y| y.throughput))
                        })
                        .collect(),
                })
                .collect(),
            log_y: false,
        };
        save(
            "closed_loop.svg",
            "closed-loop throughput against connections",
            chart.lines(),
        )?;
    }
    let offloads: Vec<&WorkloadResult> = results
        .iter()
        .filter(|w| w.name.starts_with("offload:"))
        .collect();
    if let Some(first) = offloads.first() {
        let chart = Chart {
            title: "Inline vs offloaded (+pool: answered on a pool thread), by wake strategy"
                .into(),
            x_label: "server".into(),
            y_label: "CPU microseconds per request".into(),
            categories: first
                .servers
                .iter()
                .map(|s| s.name.replace("ours-", ""))
                .collect(),
            series: offloads
                .iter()
                .map(|w| Series {
                    name: w
                        .name
                        .split(',')
                        .next()
                        .unwrap_or("")
                        .replace("offload: ", ""),
                    values: first
                        .servers
                        .iter()
                        .map(|s| w.server(&s.name).map_or(f64::NAN, |x| median(&x.cpu_us())))
                        .collect(),
                })
                .collect(),
            log_y: false,
        };
        save(
            "offload.svg",
            "CPU per request, inline, offloaded and per wake strategy",
            chart.bars(),
        )?;
    }
    Ok(md)
}

/// Replaces the generated part of `doc` (appending it if the markers are missing) and writes
/// the plots beside it.
pub fn write_report(
    doc: &Path,
    repeats: usize,
    measure: Duration,
    results: &[WorkloadResult],
    latency: &[WakeLatency],
) -> io::Result<()> {
    let dir = doc.parent().unwrap_or(Path::new("."));
    let mut g = String::new();
    g.push_str("### The machine\n\n");
    g.push_str(&crate::machine::describe());
    g.push_str(&format!(
        "\nServer pinned to CPU 0, load client to CPU 1; {repeats} repeats of {}s per server and \
         workload after a warm-up, servers in a shuffled order per repeat. Ratios are paired per \
         repeat: median (min-max). `syscalls/req` comes from separate passes under `perf stat`, \
         one per repeat, counted over the measured window only (median); \
         `waits/req` (`io_uring_enter` or `epoll_wait` calls) and `wakes/handoff` from our \
         runtime's counters. Command: `cargo run --release -p benches --bin compare`.\n\n",
        measure.as_secs()
    ));
    g.push_str("### The article's claims, by the numbers\n\n");
    g.push_str(&markdown_table(&claims(results, latency), 3));
    g.push_str("\n### Plots\n\n");
    g.push_str(&plots(&dir.join("plots"), results)?);
    g.push_str("### Every workload\n\n");
    for w in results {
        g.push_str(&format!("#### {}\n\n", w.title()));
        g.push_str(&markdown_table(&w.rows(), 1));
        g.push('\n');
    }
    if !latency.is_empty() {
        g.push_str(
            "### Cross-thread wake latency (write to arrival, one byte, reactor asleep)\n\n",
        );
        g.push_str(&markdown_table(&wake_latency_rows(latency), 1));
        g.push('\n');
    }
    replace_section(doc, "generated results", &g)
}
