//! Ours: the example servers' code on this runtime, one reactor, on either backend.

use std::io::{self, BufRead, Write};
use std::time::Duration;

use examples::{Handling, Placement};
use runtime::{Builder, WakeStrategy};

use super::{announce, Handler, Ours, Protocol};

pub(super) fn serve_ours(ours: Ours, handler: Handler) -> io::Result<()> {
    let Ours {
        backend,
        offload,
        wake,
        budget_us,
        flipped,
    } = ours;
    let wake = match wake {
        Some(w) => WakeStrategy::parse(w).map_err(io::Error::other)?,
        None => WakeStrategy::default(),
    };
    let handling = Handling {
        placement: if offload {
            Placement::Offload
        } else {
            Placement::Inline
        },
        work: handler.work,
    };
    let mut builder = Builder::new()
        .backend(backend)
        .reactors(1)
        .pool_threads(usize::from(offload))
        .wake(wake);
    if budget_us > 0 {
        builder = builder.latency_budget(Duration::from_micros(budget_us.into()));
    }
    if let Some(path) = flipped {
        builder = builder.uring_fast_path(path.name, !path.on_by_default)?;
    }
    builder.try_block_on(async move {
        let info = runtime::running_backend().expect("inside the runtime");
        if runtime::Backend::from(info.kind()) != backend {
            return Err(io::Error::other(format!("asked for {backend}, got {info}")));
        }
        if handler.protocol == Protocol::Hyper {
            return serve_ours_hyper().await;
        }
        if handler.protocol == Protocol::Udp {
            let socket = runtime::net::UdpSocket::bind("127.0.0.1:0").await?;
            answer_metrics_requests(runtime::reactors());
            announce(socket.local_addr()?)?;
            return examples::udp_echo::echo(socket, handling).await;
        }
        let listener = runtime::net::TcpListener::bind("127.0.0.1:0")?;
        answer_metrics_requests(runtime::reactors());
        announce(listener.local_addr()?)?;
        loop {
            let (stream, _) = listener.accept().await?;
            match handler.protocol {
                Protocol::Echo => drop(runtime::spawn(examples::echo::echo(stream, handling))),
                Protocol::Http => drop(runtime::spawn(examples::http::serve(stream, handling))),
                Protocol::Hyper | Protocol::Udp => unreachable!("served above"),
            }
        }
    })?
}

/// The hyper example's service through `runtime::compat`.
async fn serve_ours_hyper() -> io::Result<()> {
    let server = runtime::Server::bind("127.0.0.1:0".parse().expect("addr")).await?;
    let draining = server.draining();
    server.serve(move |stream| {
        let service = hyper::service::service_fn(examples::hyper_app::route);
        let conn = examples::hyper_app::serve_connection(stream, None, service, draining.clone());
        async move {
            let _ = conn.await;
        }
    })?;
    answer_metrics_requests(runtime::reactors());
    announce(server.local_addr())?;
    std::future::pending().await
}

/// For each `metrics` line on stdin, prints `metrics <name>=<value> ...` (every reactor's
/// counters summed) on stdout.
fn answer_metrics_requests(reactors: Vec<runtime::ReactorHandle>) {
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if line.trim() != "metrics" {
                continue;
            }
            let snapshots: Vec<_> = reactors.iter().map(|r| r.metrics().snapshot()).collect();
            let total = runtime::MetricsSnapshot::sum(&snapshots);
            let mut out = io::stdout().lock();
            if writeln!(out, "metrics {total}")
                .and_then(|()| out.flush())
                .is_err()
            {
                return;
            }
        }
    });
}
