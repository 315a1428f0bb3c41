//! The article's deadlock, for every wake strategy on every backend: every connection idle and
//! every reactor asleep, a response is written from a thread that does not own the connection
//! (a pool thread, then another reactor). The client must get it within a bound.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

mod common;

use common::{gettid, totals, wait_until_asleep};
use runtime::net::{TcpListener, TcpStream};
use runtime::{BufResult, MetricsSnapshot};

/// A blocking client: sends `rounds` requests, one at a time, and returns when each reply
/// arrived. A reply that does not come within 5 s fails the test.
fn client(addr: SocketAddr, rounds: usize) -> std::thread::JoinHandle<Vec<Instant>> {
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (0..rounds)
            .map(|round| {
                s.write_all(format!("ping {round}\n").as_bytes())
                    .expect("send");
                let mut reply = [0u8; 7];
                s.read_exact(&mut reply)
                    .unwrap_or_else(|e| panic!("round {round}: no reply (deadlock?): {e}"));
                assert_eq!(&reply, format!("pong {round}\n").as_bytes());
                Instant::now()
            })
            .collect()
    })
}

async fn read_request(stream: &TcpStream) {
    let mut got = Vec::new();
    while !got.ends_with(b"\n") {
        let BufResult(res, buf) = stream.read(vec![0u8; 16]).await;
        let n = res.expect("read");
        assert!(n > 0, "client closed");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Writes the reply of `round`; returns when the write began.
async fn respond(stream: &TcpStream, round: usize) -> Instant {
    let start = Instant::now();
    let BufResult(res, _) = stream
        .write_all(format!("pong {round}\n").into_bytes())
        .await;
    res.expect("write the response from a foreign thread");
    start
}

/// The article's deadlock, twice: a reply written by a pool thread while both reactors sleep,
/// then by reactor 1 while reactor 0 (the owner) sleeps. Each reply must arrive within `bound`
/// of the start of its write (the wait for the reactors to fall asleep is not counted).
/// Returns the counters' change over the scenario.
async fn deadlock_scenario(bound: Duration) -> MetricsSnapshot {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let reactor0 = gettid();
    let reactor1 = within_seconds(runtime::spawn_on(1, async { gettid() }))
        .await
        .expect("reactor 1");
    let client = client(listener.local_addr().expect("addr"), 2);
    let (stream, _) = listener.accept().await.expect("accept");
    let before = totals();

    // Round 0: the reply is written by a pool thread while both reactors sleep.
    read_request(&stream).await;
    let (stream, start0) = within_seconds(runtime::pool::spawn(async move {
        wait_until_asleep(&[reactor0, reactor1]);
        let start = respond(&stream, 0).await;
        (stream, start)
    }))
    .await
    .expect("pool task");

    // Round 1: the reply is written by reactor 1 while reactor 0, the owner, sleeps.
    read_request(&stream).await;
    let start1 = within_seconds(runtime::spawn_on(1, async move {
        wait_until_asleep(&[reactor0]);
        respond(&stream, 1).await
    }))
    .await
    .expect("reactor 1 task");

    let arrived = within_seconds(runtime::pool::spawn_blocking(move || client.join()))
        .await
        .expect("join task")
        .expect("the client got both replies");
    for (round, (start, end)) in [start0, start1].into_iter().zip(arrived).enumerate() {
        let took = end.saturating_duration_since(start);
        assert!(took < bound, "round {round} took {took:?}, bound {bound:?}");
    }
    totals().since(&before)
}

const BOUND: Duration = Duration::from_secs(1);

/// Awaits a task finished by another thread, failing after 5 s: a lost cross-thread wake
/// fails the test in seconds (this reactor's own timer wakes it), not at the watchdog.
async fn within_seconds<F: std::future::Future>(task: F) -> F::Output {
    runtime::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("no wake within 5 s: a cross-thread wake was lost")
}

/// `Eventfd` writes the eventfd for every notification (none suppressed); both replies needed
/// one. (Each handoff is counted just before its wake, so the two counts are not compared at a
/// moment another thread may be between them.)
#[runtime::test(reactors = 2, pool_threads = 1, wake = "eventfd", timeout_secs = 30)]
async fn deadlock_eventfd() {
    let used = deadlock_scenario(BOUND).await;
    assert!(used.wakes_written >= 2, "{used:?}");
    assert_eq!(used.wakes_suppressed, 0, "{used:?}");
}

/// `EventfdIfParked` writes only to a parked reactor: both replies went to sleeping ones.
#[runtime::test(
    reactors = 2,
    pool_threads = 1,
    wake = "eventfd-if-parked",
    timeout_secs = 30
)]
async fn deadlock_eventfd_if_parked() {
    let used = deadlock_scenario(BOUND).await;
    assert!(used.wakes_written >= 2, "{used:?}");
}

/// `Timeout` never writes: the reactors wake by themselves within the timeout.
#[runtime::test(
    reactors = 2,
    pool_threads = 1,
    wake = "timeout:20ms",
    timeout_secs = 30
)]
async fn deadlock_timeout() {
    let used = deadlock_scenario(Duration::from_millis(500)).await;
    assert_eq!(used.wakes_written, 0, "{used:?}");
}

#[runtime::test(reactors = 2, pool_threads = 1, wake = "sqpoll:5ms", timeout_secs = 30)]
async fn deadlock_sqpoll() {
    deadlock_scenario(BOUND).await;
}

#[runtime::test(reactors = 2, pool_threads = 1, wake = "msg-ring", timeout_secs = 30)]
async fn deadlock_msg_ring() {
    let used = deadlock_scenario(BOUND).await;
    assert!(used.wakes_written >= 2, "{used:?}");
}

#[runtime::test(
    reactors = 2,
    pool_threads = 1,
    wake = "direct-first",
    timeout_secs = 30
)]
async fn deadlock_direct_first() {
    deadlock_scenario(BOUND).await;
}

/// A pool thread hands 200 tasks to reactor 0 while a task keeps reactor 0 awake; returns the
/// counters' change. `EventfdIfParked` then costs no syscall per handoff; `Eventfd` writes
/// every time.
async fn handoffs_to_a_busy_reactor() -> MetricsSnapshot {
    let busy = std::rc::Rc::new(std::cell::Cell::new(true));
    let spinning = busy.clone();
    let spinner = runtime::spawn(async move {
        while spinning.get() {
            runtime::yield_now().await;
        }
    });
    let here = runtime::current_reactor().expect("on a reactor");
    let before = totals();
    let handed = runtime::pool::spawn_blocking(move || {
        (0..200)
            .map(|i| here.spawn(async move { i }))
            .collect::<Vec<_>>()
    })
    .await
    .expect("pool");
    for (i, task) in handed.into_iter().enumerate() {
        assert_eq!(task.await.expect("handed-off task"), i);
    }
    // A handoff is counted before its wake (written or suppressed) is: wait for the last
    // wakes' counts, which the pool thread may still be making.
    let deadline = Instant::now() + Duration::from_secs(5);
    let used = loop {
        let used = totals().since(&before);
        if used.wakes_written + used.wakes_suppressed >= used.handoffs {
            break used;
        }
        assert!(Instant::now() < deadline, "wakes never counted: {used:?}");
        runtime::yield_now().await;
    };
    busy.set(false);
    spinner.await.expect("spinner");
    assert!(used.handoffs >= 200, "{used:?}");
    used
}

#[runtime::test(pool_threads = 1, wake = "eventfd-if-parked", timeout_secs = 30)]
async fn handoffs_to_a_busy_reactor_write_no_wake_if_parked_only() {
    let used = handoffs_to_a_busy_reactor().await;
    assert!(used.wakes_suppressed >= 150, "{used:?}");
    assert!(used.wakes_written <= 50, "{used:?}");
}

#[runtime::test(pool_threads = 1, wake = "eventfd", timeout_secs = 30)]
async fn handoffs_to_a_busy_reactor_write_every_wake_with_eventfd() {
    let used = handoffs_to_a_busy_reactor().await;
    assert!(used.wakes_written >= 200, "{used:?}");
    assert_eq!(used.wakes_suppressed, 0, "{used:?}");
}

#[runtime::test(reactors = 2, pool_threads = 1)]
async fn a_reactor_reads_and_the_pool_writes_a_megabyte() {
    // The handoff path under volume, both directions at once on one connection: the owning
    // reactor reads a megabyte the peer sends while a pool thread writes another to the peer.
    const LEN: usize = 1 << 20;
    let up = |i: usize| (i % 241) as u8;
    let down = |i: usize| (i % 239) as u8;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut sender = s.try_clone().expect("clone");
        let sending = std::thread::spawn(move || {
            let data: Vec<u8> = (0..LEN).map(up).collect();
            sender.write_all(&data).expect("peer send");
        });
        let mut got = vec![0u8; LEN];
        s.read_exact(&mut got).expect("read all");
        sending.join().expect("peer sender");
        got
    });
    let (stream, _) = listener.accept().await.expect("accept");
    let stream = std::sync::Arc::new(stream);
    let writer = stream.clone();
    let written = runtime::pool::spawn(async move {
        let data: Vec<u8> = (0..LEN).map(down).collect();
        let mut chunks = 0;
        for chunk in data.chunks(10_000) {
            let BufResult(res, _) = writer.write_all(chunk.to_vec()).await;
            res.expect("write from the pool");
            chunks += 1;
        }
        chunks
    });
    let mut received = 0;
    while received < LEN {
        let BufResult(res, buf) = stream.read(vec![0u8; 65536]).await;
        let n = res.expect("read on the owning reactor");
        assert!(n > 0, "the peer closed early");
        for (i, &b) in buf[..n].iter().enumerate() {
            assert_eq!(b, up(received + i), "byte {} from the peer", received + i);
        }
        received += n;
    }
    assert_eq!(written.await.expect("pool task"), LEN.div_ceil(10_000));
    let got = runtime::pool::spawn_blocking(move || peer.join().expect("peer"))
        .await
        .expect("join");
    assert!(
        got.iter().enumerate().all(|(i, &b)| b == down(i)),
        "bytes the pool wrote differ"
    );
}

#[runtime::test(reactors = 2, pool_threads = 2)]
async fn pool_and_reactor_join_handles_cross_threads() {
    let on_pool = runtime::pool::spawn(async { std::thread::current().name().map(str::to_owned) });
    let name = on_pool.await.expect("pool").expect("named thread");
    assert!(name.starts_with("pool-"), "{name}");
    let blocking = runtime::pool::spawn_blocking(|| 6 * 7);
    assert_eq!(blocking.await.expect("blocking"), 42);
    // A pool task awaits a reactor task's handle.
    let via_pool = runtime::pool::spawn(async {
        runtime::spawn_on(1, async {
            std::thread::current().name().map(str::to_owned)
        })
        .await
        .expect("reactor 1")
    });
    assert_eq!(via_pool.await.expect("pool").as_deref(), Some("reactor-1"));
    let panicked = runtime::pool::spawn_blocking(|| panic!("pool panic")).await;
    assert!(panicked.expect_err("panicked").is_panic());
    // The pool still serves after a panic.
    assert_eq!(runtime::pool::spawn(async { 1 }).await.expect("pool"), 1);
}

#[runtime::test(reactors = 2, pool_threads = 1)]
async fn serve_accepts_on_every_reactor() {
    use std::collections::HashSet;
    use std::sync::{Arc, Mutex};

    let seen = Arc::new(Mutex::new(HashSet::new()));
    let record = seen.clone();
    let addr = runtime::serve("127.0.0.1:0".parse().expect("addr"), move |stream| {
        let record = record.clone();
        async move {
            let here = runtime::current_reactor().expect("on a reactor").index();
            record.lock().expect("lock").insert(here);
            let BufResult(res, buf) = stream.read(vec![0u8; 64]).await;
            let n = res.expect("read");
            let BufResult(res, _) = stream.write_all(buf[..n].to_vec()).await;
            res.expect("write");
        }
    })
    .await
    .expect("serve")
    .local_addr();
    let before = runtime::metrics();
    let clients: Vec<_> = (0..32)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                let msg = format!("client {i}");
                s.write_all(msg.as_bytes()).expect("send");
                let mut got = vec![0u8; msg.len()];
                s.read_exact(&mut got).expect("echo");
                assert_eq!(got, msg.as_bytes());
            })
        })
        .collect();
    for c in clients {
        // Joining blocks this reactor, but the other one serves too, and the accepts and echoes
        // of this one are already queued in the kernel.
        runtime::pool::spawn_blocking(move || c.join().expect("client"))
            .await
            .expect("join");
    }
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        HashSet::from([0, 1]),
        "both reactors accepted connections"
    );
    let after = runtime::metrics();
    let work: u64 = after
        .iter()
        .zip(&before)
        .map(|(a, b)| {
            let d = a.since(b);
            d.sqes_submitted + d.direct_syscalls
        })
        .sum();
    assert!(
        work >= 64,
        "the metrics count the accepts, reads and writes: {work}"
    );
}
