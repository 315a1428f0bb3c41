//! Measurements, medians, paired ratios, and the tables printed and written from them.

pub mod ablation;
pub mod budget_curve;
pub mod svg;
pub mod writer;

use std::time::Duration;

/// Our servers' counters over one measured window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// `io_uring_enter` or `epoll_wait` calls.
    pub driver_waits: u64,
    /// Operations and tasks handed to a reactor from another thread.
    pub handoffs: u64,
    /// Wakes that cost a syscall.
    pub wakes_written: u64,
}

/// One server's measurements in one repeat of one workload.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Server CPU time per completed request.
    pub cpu_per_request: Duration,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// 99.9th percentile latency, microseconds.
    pub p999_us: u64,
    /// Completed requests per second in the measured window.
    pub throughput: f64,
    /// Completed requests in the measured window.
    pub completed: u64,
    /// The client, not the server, was the bottleneck.
    pub client_saturated: bool,
    /// Our servers' counters over the window (peers have none).
    pub counters: Option<Counters>,
}

/// One server's results over the repeats of one workload.
#[derive(Debug, Clone)]
pub struct ServerResult {
    /// The server's name.
    pub name: String,
    /// One of ours (not a peer).
    pub ours: bool,
    /// One per repeat, in repeat order.
    pub samples: Vec<Sample>,
    /// From the separate `perf` pass, if it ran.
    pub syscalls_per_request: Option<f64>,
}

/// Every server's results for one workload.
#[derive(Debug, Clone)]
pub struct WorkloadResult {
    /// Human-readable description.
    pub name: String,
    /// Open loop (a fixed rate: compare CPU per request) or not (compare throughput).
    pub open: bool,
    /// Request size, to show streaming throughput in MiB/s.
    pub bytes_per_request: usize,
    /// The server the "cpu / reference" column divides by.
    pub reference: String,
    /// In table order.
    pub servers: Vec<ServerResult>,
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Median, minimum and maximum of `values`.
pub fn spread(values: &[f64]) -> (f64, f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(values), min, max)
}

/// Per repeat, `a[i] / b[i]`: ratios of two servers measured side by side in the same repeat.
pub fn paired_ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x / y).collect()
}

/// Formats a ratio summary: `1.02 (0.98-1.05)`.
pub fn ratio_cell(ratios: &[f64]) -> String {
    let (m, lo, hi) = spread(ratios);
    if ratios.is_empty() {
        "-".into()
    } else if ratios.len() == 1 {
        format!("{m:.2}")
    } else {
        format!("{m:.2} ({lo:.2}-{hi:.2})")
    }
}

impl ServerResult {
    /// CPU microseconds per request, per repeat.
    pub fn cpu_us(&self) -> Vec<f64> {
        self.samples
            .iter()
            .map(|s| s.cpu_per_request.as_secs_f64() * 1e6)
            .collect()
    }

    /// Requests per second, per repeat.
    pub fn rps(&self) -> Vec<f64> {
        self.samples.iter().map(|s| s.throughput).collect()
    }

    /// The median of `f` over the repeats.
    pub fn med(&self, f: impl Fn(&Sample) -> f64) -> f64 {
        median(&self.samples.iter().map(f).collect::<Vec<_>>())
    }

    /// The median of a per-request (or per-handoff) counter ratio, if the server has counters.
    fn counter_ratio(&self, f: impl Fn(&Counters, &Sample) -> Option<f64>) -> Option<f64> {
        let v: Vec<f64> = self
            .samples
            .iter()
            .filter_map(|s| f(s.counters.as_ref()?, s))
            .collect();
        (!v.is_empty()).then(|| median(&v))
    }

    /// `io_uring_enter` / `epoll_wait` calls per request.
    pub fn waits_per_request(&self) -> Option<f64> {
        self.counter_ratio(|c, s| Some(c.driver_waits as f64 / s.completed.max(1) as f64))
    }

    /// Wakes written per handoff, where there were handoffs.
    pub fn wakes_per_handoff(&self) -> Option<f64> {
        self.counter_ratio(|c, _| {
            (c.handoffs > 0).then(|| c.wakes_written as f64 / c.handoffs as f64)
        })
    }
}

impl WorkloadResult {
    /// The server named `name`.
    pub fn server(&self, name: &str) -> Option<&ServerResult> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// The best peer: the cheapest per request in an open loop, the fastest in a closed one.
    pub fn best_peer(&self) -> Option<&ServerResult> {
        self.servers.iter().filter(|s| !s.ours).min_by(|a, b| {
            let key = |s: &ServerResult| {
                if self.open {
                    median(&s.cpu_us())
                } else {
                    -median(&s.rps())
                }
            };
            key(a).total_cmp(&key(b))
        })
    }

    /// Paired ratios of `a`'s CPU per request to `b`'s.
    pub fn cpu_ratio(&self, a: &str, b: &str) -> Option<Vec<f64>> {
        Some(paired_ratios(
            &self.server(a)?.cpu_us(),
            &self.server(b)?.cpu_us(),
        ))
    }

    /// Paired ratios of `a`'s throughput to `b`'s.
    pub fn rps_ratio(&self, a: &str, b: &str) -> Option<Vec<f64>> {
        Some(paired_ratios(
            &self.server(a)?.rps(),
            &self.server(b)?.rps(),
        ))
    }

    fn streaming(&self) -> bool {
        self.bytes_per_request >= 16 * 1024
    }

    /// The table: a header row, then one row per server.
    pub fn rows(&self) -> Vec<Vec<String>> {
        let best = self.best_peer();
        let reference = self.server(&self.reference);
        let opt = |v: Option<f64>, digits: usize| v.map_or("-".into(), |v| format!("{v:.digits$}"));
        let mut rows = vec![vec![
            "server".to_string(),
            if self.streaming() { "MiB/s" } else { "req/s" }.into(),
            "cpu us/req".into(),
            "mean us".into(),
            "p50 us".into(),
            "p99 us".into(),
            "p99.9 us".into(),
            "syscalls/req".into(),
            "waits/req".into(),
            "wakes/handoff".into(),
            "cpu / best peer".into(),
            format!("cpu / {}", self.reference),
            "rate / best peer".into(),
        ]];
        for s in &self.servers {
            let rate = s.med(|x| x.throughput);
            let rate = if self.streaming() {
                format!("{:.0}", rate * self.bytes_per_request as f64 / 1_048_576.0)
            } else {
                format!("{rate:.0}")
            };
            let vs = |other: Option<&ServerResult>, f: fn(&ServerResult) -> Vec<f64>| {
                other.map_or("-".into(), |o| ratio_cell(&paired_ratios(&f(s), &f(o))))
            };
            let mut name = s.name.clone();
            if s.samples.iter().any(|x| x.client_saturated) {
                name.push_str(" (client saturated)");
            }
            rows.push(vec![
                name,
                rate,
                format!("{:.2}", median(&s.cpu_us())),
                format!("{:.0}", s.med(|x| x.mean_us)),
                format!("{:.0}", s.med(|x| x.p50_us as f64)),
                format!("{:.0}", s.med(|x| x.p99_us as f64)),
                format!("{:.0}", s.med(|x| x.p999_us as f64)),
                opt(s.syscalls_per_request, 2),
                opt(s.waits_per_request(), 2),
                opt(s.wakes_per_handoff(), 2),
                vs(best, ServerResult::cpu_us),
                vs(reference, ServerResult::cpu_us),
                vs(best, ServerResult::rps),
            ]);
        }
        rows
    }

    /// The title line: the workload and its best peer.
    pub fn title(&self) -> String {
        match self.best_peer() {
            Some(best) => format!("{} (best peer: {})", self.name, best.name),
            None => self.name.clone(),
        }
    }
}

/// Rows as aligned plain text.
pub fn text_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                if c == 0 {
                    format!("{cell:<w$}", w = widths[c])
                } else {
                    format!("{cell:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Rows as a markdown table; the first `text_columns` columns are left-aligned, the rest
/// (numbers) right-aligned.
pub fn markdown_table(rows: &[Vec<String>], text_columns: usize) -> String {
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
        if i == 0 {
            let align: Vec<&str> = (0..row.len())
                .map(|c| if c < text_columns { "---" } else { "---:" })
                .collect();
            out.push_str(&format!("|{}|\n", align.join("|")));
        }
    }
    out
}

/// Writes `svg` as `dir/file` (making `dir`), and returns the markdown that shows it from a
/// document beside `dir` (named `plots`).
pub fn save_plot(
    dir: &std::path::Path,
    file: &str,
    alt: &str,
    svg: &str,
) -> std::io::Result<String> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(file), svg)?;
    Ok(format!("![{alt}](plots/{file})\n\n"))
}

/// Replaces the text between `<!-- compare: {name} begin -->` and its end marker in `doc` with
/// `content` (appending the section if the markers are missing): a generated part of
/// `docs/benchmarks.md` that one kind of run owns, with hand-written text around it.
pub fn replace_section(doc: &std::path::Path, name: &str, content: &str) -> std::io::Result<()> {
    let begin = format!("<!-- compare: {name} begin -->");
    let end = format!("<!-- compare: {name} end -->");
    let section = format!("{begin}\n\n{}\n{end}", content.trim_end());
    let old = std::fs::read_to_string(doc).unwrap_or_default();
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{section}{}", &old[..b], &old[e + end.len()..])
        }
        _ => format!("{old}\n{section}\n"),
    };
    std::fs::write(doc, new)
}

#[cfg(test)]
mod tests {
    use super::replace_section;

    /// A section is appended once, then replaced in place, and the text around it stays.
    #[test]
    fn a_section_is_replaced_between_its_markers_only() {
        let doc = std::env::temp_dir().join(format!("section-{}.md", std::process::id()));
        std::fs::write(&doc, "intro\n").unwrap();
        replace_section(&doc, "x", "first").unwrap();
        let mut text = std::fs::read_to_string(&doc).unwrap();
        text.push_str("after\n");
        std::fs::write(&doc, text).unwrap();
        replace_section(&doc, "x", "second").unwrap();
        let text = std::fs::read_to_string(&doc).unwrap();
        std::fs::remove_file(&doc).unwrap();
        assert_eq!(
            text,
            "intro\n\n<!-- compare: x begin -->\n\nsecond\n<!-- compare: x end -->\nafter\n"
        );
    }
}
