//! The ablation table: each io_uring fast path switched from its default (and the latency budget
//! on), against the same server without the change, at the workloads where it should matter. It has its own section of
//! `docs/benchmarks.md`, written by the full run and by `compare --only ablation`.

use std::io;
use std::path::Path;

use crate::report::{markdown_table, median, ratio_cell, replace_section, WorkloadResult};

/// The prefix of the ablation workloads' names.
pub const PREFIX: &str = "ablation: ";

/// What `server` is measured against in an ablation workload, and the row's label: a server
/// with a fast path switched from its default (`ours-uring!min-wait`) against the same server
/// without the switch; any other against the workload's reference.
fn baseline<'a>(server: &'a str, reference: &'a str) -> (&'a str, String) {
    match server.split_once('!') {
        Some((with, path)) => {
            let on = runtime::FastPath::named(path).is_some_and(|p| !p.on_by_default);
            (with, format!("{path} {}", if on { "on" } else { "off" }))
        }
        None => (reference, format!("{server} (vs {reference})")),
    }
}

/// The table: one row per server that is not a workload's reference.
pub fn rows(results: &[WorkloadResult]) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "change",
        "workload",
        "cpu us/req with / changed",
        "cpu changed / with",
        "req/s changed / with",
        "syscalls/req with / changed",
        "p50 us with / changed",
    ]
    .map(String::from)
    .to_vec()];
    for w in results.iter().filter(|w| w.name.starts_with(PREFIX)) {
        let workload = &w.name[PREFIX.len()..];
        for s in w.servers.iter().filter(|s| s.name != w.reference) {
            let (with, label) = baseline(&s.name, &w.reference);
            let Some(base) = w.server(with) else { continue };
            let syscalls = |r: &crate::report::ServerResult| {
                r.syscalls_per_request
                    .map_or("-".to_string(), |v| format!("{v:.2}"))
            };
            rows.push(vec![
                label,
                workload.to_string(),
                format!("{:.2} / {:.2}", median(&base.cpu_us()), median(&s.cpu_us())),
                w.cpu_ratio(&s.name, with)
                    .map_or("-".into(), |r| ratio_cell(&r)),
                w.rps_ratio(&s.name, with)
                    .map_or("-".into(), |r| ratio_cell(&r)),
                format!("{} / {}", syscalls(base), syscalls(s)),
                format!(
                    "{:.0} / {:.0}",
                    base.med(|x| x.p50_us as f64),
                    s.med(|x| x.p50_us as f64)
                ),
            ]);
        }
    }
    rows
}

/// Replaces the ablation section of `doc` (appending it if its markers are missing).
pub fn write(doc: &Path, repeats: usize, results: &[WorkloadResult]) -> io::Result<()> {
    let mut g = format!(
        "{repeats} repeats; ratios paired per repeat, median (min-max). A CPU ratio above 1 \
         means the change costs CPU. Each change flips one path from its default: \
         `<path> off` for a path on by default, `<path> on` for an opt-in one.\n\n"
    );
    g.push_str(&markdown_table(&rows(results), 2));
    replace_section(doc, "ablation", &g)
}
