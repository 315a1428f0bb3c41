//! Cross-thread handoff latency per wake strategy (see `benches::wake_latency`).
//!
//! ```text
//! cargo bench -p benches --bench handoff
//! ```

use std::time::Duration;

use benches::wake_latency::{cases, start};
use criterion::{criterion_group, criterion_main, Criterion};
use runtime::{Backend, Builder};

fn handoff(c: &mut Criterion) {
    if Builder::new().backend(Backend::Uring).build().is_err() {
        eprintln!("skipping: io_uring is not available here");
        return;
    }
    let mut group = c.benchmark_group("write_to_arrival");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3));
    for (name, wake, writer) in cases() {
        let mut run = start(wake, writer);
        group.bench_function(name, |b| b.iter_custom(|iters| run(iters).iter().sum()));
    }
    group.finish();
}

criterion_group!(benches, handoff);
criterion_main!(benches);
