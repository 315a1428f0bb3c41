//! Running a plan: each workload's servers in a shuffled order per repeat, each measured over the
//! load's window (CPU time, latency, counters), then a separate `perf` pass for syscalls.

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::client::{run_load, LoadSpec, Mode, WindowHook};
use crate::cpu::{self, process_cpu_time};
use crate::progress::Progress;
use crate::report::{
    ablation, budget_curve, median, text_table, writer, Counters, Sample, ServerResult,
    WorkloadResult,
};
use crate::servers::{ServerKind, ServerProcess};
use crate::syscalls::{self, SyscallCount};
use crate::wake_latency;
use crate::workloads::Workload;

/// What one invocation runs, and where its report goes.
#[derive(Debug)]
pub struct Plan {
    pub quick: bool,
    pub repeats: usize,
    pub workloads: Vec<Workload>,
    pub warmup: Duration,
    pub measure: Duration,
    /// Measured window of the `perf` pass (`None`: no pass).
    pub perf_window: Option<Duration>,
    /// Where the report goes, if anywhere.
    pub write_to: Option<PathBuf>,
    /// Where the sections that one kind of partial run owns go, if anywhere.
    pub sections_to: Option<PathBuf>,
    /// The sections whose every workload this plan measures (only those are written).
    pub sections: Vec<Section>,
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
        on_window: None,
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

/// Syscalls per request of `kind` on `w`, counted by `perf` over the measured window of a short
/// run of its own (connection setup and warm-up left out).
fn count_syscalls(kind: ServerKind, w: &Workload, window: Duration, cpu: usize) -> io::Result<f64> {
    let server = ServerProcess::start(kind, w.protocol, w.work, cpu)?;
    let counter = Arc::new(Mutex::new(SyscallCount::attach(server.pid())?));
    let mut load = spec(w, server.addr, Duration::from_millis(200), window);
    let hook = counter.clone();
    load.on_window = Some(WindowHook(Arc::new(move |open| {
        let mut counter = hook.lock().map_err(|_| io::Error::other("poisoned"))?;
        if open {
            counter.enable()
        } else {
            counter.disable()
        }
    })));
    let result = run_load(&load);
    drop(load);
    let counter = Arc::into_inner(counter)
        .and_then(|m| m.into_inner().ok())
        .ok_or_else(|| io::Error::other("syscall counter still shared"))?;
    let count = counter.finish()?;
    Ok(count as f64 / result?.completed.max(1) as f64)
}

/// The progress line of one measurement: `<workload> | <what> <repeat>/<repeats> | <server>`.
fn step(w: &Workload, what: &str, repeat: usize, repeats: usize, kind: ServerKind) -> String {
    format!(
        "{} | {what} {}/{repeats} | {}",
        w.name,
        repeat + 1,
        kind.name()
    )
}

/// Runs every workload of `plan`, prints its tables, and writes its report if told where.
pub fn run(plan: &Plan) -> io::Result<()> {
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
        wake_latency::cases().len()
    };
    let mut progress = Progress::new(
        per_run * (runs * plan.repeats) as u32
            + per_perf_run * (runs * plan.repeats) as u32
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
        let mut syscalls = vec![Vec::new(); w.servers.len()];
        for repeat in 0..plan.repeats {
            for kind in shuffled(&w.servers, (repeat * 31 + wi) as u64) {
                let i = w.servers.iter().position(|k| *k == kind).expect("listed");
                progress.start(&step(w, "repeat", repeat, plan.repeats, kind));
                servers[i].samples.push(measure(kind, w, plan, server_cpu)?);
                progress.finish(per_run);
            }
            let Some(window) = perf else { continue };
            for kind in shuffled(&w.servers, (repeat * 17 + wi) as u64) {
                let i = w.servers.iter().position(|k| *k == kind).expect("listed");
                progress.start(&step(w, "syscalls", repeat, plan.repeats, kind));
                syscalls[i].push(count_syscalls(kind, w, window, server_cpu)?);
                progress.finish(per_perf_run);
            }
        }
        for (server, counts) in servers.iter_mut().zip(&syscalls) {
            server.syscalls_per_request = (!counts.is_empty()).then(|| median(counts));
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
    if let Some(doc) = &plan.sections_to {
        for section in &plan.sections {
            match section {
                Section::Ablation => ablation::write(doc, plan.repeats, &results)?,
                Section::BudgetCurve => budget_curve::write(doc, plan.repeats, &results)?,
            }
            println!("\nwrote {section:?} into {}", doc.display());
        }
    }
    Ok(())
}

/// A part of `docs/benchmarks.md` that a partial run of its workloads owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `report::ablation`.
    Ablation,
    /// `report::budget_curve`.
    BudgetCurve,
}

impl Section {
    /// The sections whose every workload in `all` is also in `chosen` (a section is written
    /// only by a run that measured all of it).
    pub fn complete_in(all: &[Workload], chosen: &[Workload]) -> Vec<Section> {
        let count = |ws: &[Workload], prefix: &str| {
            ws.iter().filter(|w| w.name.starts_with(prefix)).count()
        };
        [Section::Ablation, Section::BudgetCurve]
            .into_iter()
            .filter(|s| {
                let n = count(chosen, s.prefix());
                n > 0 && n == count(all, s.prefix())
            })
            .collect()
    }

    fn prefix(self) -> &'static str {
        match self {
            Section::Ablation => ablation::PREFIX,
            Section::BudgetCurve => budget_curve::PREFIX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Section;
    use crate::workloads::full_matrix;

    #[test]
    fn a_section_is_written_only_by_a_run_of_all_its_workloads() {
        let all = full_matrix();
        let only = |text: &str| -> Vec<_> {
            all.iter()
                .filter(|w| w.name.contains(text))
                .cloned()
                .collect()
        };
        assert_eq!(
            Section::complete_in(&all, &all),
            [Section::Ablation, Section::BudgetCurve]
        );
        assert_eq!(
            Section::complete_in(&all, &only("ablation")),
            [Section::Ablation]
        );
        assert_eq!(
            Section::complete_in(&all, &only("latency budget")),
            [Section::BudgetCurve]
        );
        // "open loop 50000/s" picks one workload of each: neither is complete.
        assert_eq!(Section::complete_in(&all, &only("open loop 50000/s")), []);
    }
}
