//! The latency-budget curve: CPU per request (against the raw epoll loop) and latency, for each
//! budget at each offered rate, on both backends; its table and plots have their own section of
//! `docs/benchmarks.md`, written by the full run and by `compare --only "latency budget"`.

use std::io;
use std::path::Path;

use runtime::Backend;

use crate::report::svg::{Chart, Series};
use crate::report::{
    markdown_table, median, ratio_cell, replace_section, save_plot, WorkloadResult,
};
use crate::servers::ServerKind;

/// The prefix of the curve's workloads' names.
pub const PREFIX: &str = "latency budget: ";

/// The budgets of the curve, in microseconds (0: none).
pub const BUDGETS_US: [u32; 5] = [0, 25, 50, 100, 200];

/// The curve's workloads, by offered rate ("50k").
fn rates(results: &[WorkloadResult]) -> Vec<(String, &WorkloadResult)> {
    results
        .iter()
        .filter(|w| w.name.starts_with(PREFIX))
        .filter_map(|w| {
            let rate: u64 = w
                .name
                .rsplit(' ')
                .next()?
                .strip_suffix("/s")?
                .parse()
                .ok()?;
            Some((format!("{}k", rate / 1000), w))
        })
        .collect()
}

/// The name of ours on `backend` with `budget_us` (0: none).
fn server(backend: Backend, budget_us: u32) -> String {
    ServerKind::ours_budget(backend, budget_us).name()
}

fn budget_label(budget_us: u32) -> String {
    match budget_us {
        0 => "none".into(),
        us => format!("{us} us"),
    }
}

/// The table: one row per rate and budget, both backends side by side.
pub fn rows(results: &[WorkloadResult]) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "rate",
        "budget",
        "uring cpu us/req",
        "uring mean / p50 us",
        "uring syscalls/req",
        "uring cpu / raw",
        "epoll cpu us/req",
        "epoll mean / p50 us",
        "epoll cpu / raw",
    ]
    .map(String::from)
    .to_vec()];
    for (rate, w) in rates(results) {
        for (i, us) in BUDGETS_US.into_iter().enumerate() {
            let mut row = vec![
                if i == 0 { rate.clone() } else { String::new() },
                budget_label(us),
            ];
            for backend in [Backend::Uring, Backend::Epoll] {
                let name = server(backend, us);
                let Some(s) = w.server(&name) else {
                    row.extend(["-".to_string(), "-".into(), "-".into()]);
                    if backend == Backend::Uring {
                        row.push("-".into());
                    }
                    continue;
                };
                row.push(format!("{:.1}", median(&s.cpu_us())));
                row.push(format!(
                    "{:.0} / {:.0}",
                    s.med(|x| x.mean_us),
                    s.med(|x| x.p50_us as f64)
                ));
                if backend == Backend::Uring {
                    row.push(
                        s.syscalls_per_request
                            .map_or("-".into(), |v| format!("{v:.2}")),
                    );
                }
                row.push(
                    w.cpu_ratio(&name, &w.reference)
                        .map_or("-".into(), |r| ratio_cell(&r)),
                );
            }
            rows.push(row);
        }
    }
    rows
}

/// One line per backend and rate across the budgets, of `value` (a server's result in a
/// workload).
fn chart(
    results: &[WorkloadResult],
    title: &str,
    y_label: &str,
    value: impl Fn(&WorkloadResult, &str) -> Option<f64>,
) -> Chart {
    let rates = rates(results);
    let series = [Backend::Uring, Backend::Epoll]
        .into_iter()
        .flat_map(|backend| rates.iter().map(move |(rate, w)| (backend, rate, *w)))
        .map(|(backend, rate, w)| Series {
            name: format!("{backend} {rate}/s"),
            values: BUDGETS_US
                .iter()
                .map(|&us| value(w, &server(backend, us)).unwrap_or(f64::NAN))
                .collect(),
        })
        .collect();
    Chart {
        title: title.into(),
        x_label: "latency budget".into(),
        y_label: y_label.into(),
        categories: BUDGETS_US.iter().map(|&us| budget_label(us)).collect(),
        series,
        log_y: false,
    }
}

/// Replaces the curve's section of `doc` (its table, and its two plots written beside it).
pub fn write(doc: &Path, repeats: usize, results: &[WorkloadResult]) -> io::Result<()> {
    let dir = doc.parent().unwrap_or(Path::new(".")).join("plots");
    let cpu = chart(
        results,
        "CPU per request against the raw epoll loop, echo 64 B over 100 connections",
        "CPU per request / raw epoll's (median of paired ratios)",
        |w, name| Some(median(&w.cpu_ratio(name, &w.reference)?)),
    );
    let latency = chart(
        results,
        "Mean latency, echo 64 B over 100 connections",
        "mean latency, microseconds",
        |w, name| Some(w.server(name)?.med(|x| x.mean_us)),
    );
    let mut g = format!(
        "{repeats} repeats, paired ratios, median (min-max); \"cpu / raw\" is CPU per request \
         over the raw epoll loop's, syscalls per request from the `perf` pass.\n\n"
    );
    g.push_str(&markdown_table(&rows(results), 2));
    g.push('\n');
    g.push_str(&save_plot(
        &dir,
        "budget_cpu.svg",
        "CPU per request against the raw loop, by latency budget",
        &cpu.lines(),
    )?);
    g.push_str(&save_plot(
        &dir,
        "budget_latency.svg",
        "Mean latency by latency budget",
        &latency.lines(),
    )?);
    replace_section(doc, "latency budget", &g)
}
