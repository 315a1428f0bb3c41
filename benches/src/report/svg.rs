//! Small SVG charts for the report: lines over categories and grouped bars, with a legend.

use std::fmt::Write;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 110.0;
const COLORS: [&str; 10] = [
    "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#7f7f7f", "#e377c2",
    "#17becf", "#bcbd22",
];

/// One named row of values, one per category.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// One value per category (NaN: missing).
    pub values: Vec<f64>,
}

/// What the chart shows.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// Label of the category axis.
    pub x_label: String,
    /// Label of the value axis.
    pub y_label: String,
    /// The categories along the x axis.
    pub categories: Vec<String>,
    /// The data.
    pub series: Vec<Series>,
    /// Logarithmic value axis.
    pub log_y: bool,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A round tick step (1, 2 or 5 times a power of ten) that takes at most five steps to `max`.
fn nice_step(max: f64) -> f64 {
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|step| *step >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// Maps values to the plot's height: linear from zero, or logarithmic over whole decades.
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Scale {
    fn new(values: impl Iterator<Item = f64>, log: bool) -> Self {
        let finite: Vec<f64> = values
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .collect();
        let max = finite.iter().copied().fold(f64::MIN, f64::max);
        let min = finite.iter().copied().fold(f64::MAX, f64::min);
        if finite.is_empty() {
            return Scale {
                lo: 0.0,
                hi: 1.0,
                log: false,
            };
        }
        if log {
            Scale {
                lo: min.log10().floor(),
                hi: max.log10().ceil().max(min.log10().floor() + 1.0),
                log,
            }
        } else {
            Scale {
                lo: 0.0,
                hi: if max > 0.0 {
                    nice_step(max * 1.05) * 5.0
                } else {
                    1.0
                },
                log,
            }
        }
    }

    /// The y pixel of `v`.
    fn y(&self, v: f64) -> f64 {
        let t = if self.log {
            (v.max(1e-12).log10() - self.lo) / (self.hi - self.lo)
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - t.clamp(0.0, 1.0))
    }

    /// Tick values.
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            (self.lo as i32..=self.hi as i32)
                .map(|e| 10f64.powi(e))
                .collect()
        } else {
            (0..=5).map(|i| self.hi * f64::from(i) / 5.0).collect()
        }
    }
}

fn tick_label(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Chart {
    fn frame(&self, scale: &Scale) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(
            s,
            r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/><text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
            (LEFT + WIDTH - RIGHT) / 2.0,
            escape(&self.title)
        );
        for t in scale.ticks() {
            let y = scale.y(t);
            let _ = write!(
                s,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                tick_label(t)
            );
        }
        let _ = write!(
            s,
            r#"<text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">{}</text>"#,
            (TOP + HEIGHT - BOTTOM) / 2.0,
            (TOP + HEIGHT - BOTTOM) / 2.0,
            escape(&self.y_label)
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (LEFT + WIDTH - RIGHT) / 2.0,
            HEIGHT - 14.0,
            escape(&self.x_label)
        );
        for (i, series) in self.series.iter().enumerate() {
            let y = TOP + 18.0 * i as f64;
            let _ = write!(
                s,
                r#"<rect x="{}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
                WIDTH - RIGHT + 14.0,
                y,
                COLORS[i % COLORS.len()],
                WIDTH - RIGHT + 32.0,
                y + 10.0,
                escape(&series.name)
            );
        }
        s
    }

    fn category_x(&self, i: usize) -> f64 {
        let span = WIDTH - RIGHT - LEFT;
        LEFT + span * (i as f64 + 0.5) / self.categories.len().max(1) as f64
    }

    /// Labels slant when they would not fit side by side.
    fn slanted(&self) -> bool {
        let widest = self.categories.iter().map(String::len).max().unwrap_or(0);
        let room = (WIDTH - RIGHT - LEFT) / self.categories.len().max(1) as f64;
        widest as f64 * 7.0 > room
    }

    fn category_labels(&self, s: &mut String) {
        for (i, c) in self.categories.iter().enumerate() {
            let (x, y) = (self.category_x(i), HEIGHT - BOTTOM + 16.0);
            if self.slanted() {
                let _ = write!(
                    s,
                    r#"<text x="{x:.1}" y="{y}" text-anchor="end" font-size="11" transform="rotate(-30 {x:.1} {y})">{}</text>"#,
                    escape(c)
                );
            } else {
                let _ = write!(
                    s,
                    r#"<text x="{x:.1}" y="{y}" text-anchor="middle">{}</text>"#,
                    escape(c)
                );
            }
        }
    }

    fn scale(&self) -> Scale {
        Scale::new(
            self.series.iter().flat_map(|s| s.values.iter().copied()),
            self.log_y,
        )
    }

    /// One line with markers per series.
    pub fn lines(&self) -> String {
        let scale = self.scale();
        let mut s = self.frame(&scale);
        self.category_labels(&mut s);
        for (i, series) in self.series.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let points: Vec<(f64, f64)> = series
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(j, v)| (self.category_x(j), scale.y(*v)))
                .collect();
            let path: Vec<String> = points
                .iter()
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = write!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                path.join(" ")
            );
            for (x, y) in points {
                let _ = write!(
                    s,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#
                );
            }
        }
        s.push_str("</svg>\n");
        s
    }

    /// Grouped bars: one group per category, one bar per series.
    pub fn bars(&self) -> String {
        let scale = self.scale();
        let mut s = self.frame(&scale);
        self.category_labels(&mut s);
        let group = (WIDTH - RIGHT - LEFT) / self.categories.len().max(1) as f64;
        let bar = group * 0.8 / self.series.len().max(1) as f64;
        let base = scale.y(if scale.log { 10f64.powf(scale.lo) } else { 0.0 });
        for (i, series) in self.series.iter().enumerate() {
            for (j, v) in series.values.iter().enumerate() {
                if !v.is_finite() {
                    continue;
                }
                let x = LEFT + group * j as f64 + group * 0.1 + bar * i as f64;
                let y = scale.y(*v);
                let _ = write!(
                    s,
                    r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                    bar * 0.9,
                    (base - y).max(0.0),
                    COLORS[i % COLORS.len()],
                    escape(&series.name),
                    tick_label(*v)
                );
            }
        }
        s.push_str("</svg>\n");
        s
    }
}
