//! Medians, paired ratios and the printed table.

use std::time::Duration;

/// One server's measurements in one repeat of one workload.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Server CPU time per completed request.
    pub cpu_per_request: Duration,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// 99.9th percentile latency, microseconds.
    pub p999_us: u64,
    /// Completed requests per second in the measured window.
    pub throughput: f64,
    /// The client, not the server, was the bottleneck.
    pub client_saturated: bool,
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
    if ratios.len() == 1 {
        format!("{m:.2}")
    } else {
        format!("{m:.2} ({lo:.2}-{hi:.2})")
    }
}
