//! Thousands of operations dropped at random points: right after submission, while the reactor
//! is parked, after the kernel completed them. Reads and accepts are cancel-safe on both
//! backends (no byte, no connection lost, nothing out of order); every dropped operation's
//! memory is immediately reused and checked untouched; no fd leaks. Each runs with the
//! operations started on the socket's own reactor, on a pool thread and on another reactor
//! (where the sockets are also dropped, off their owner).
//!
//! `STRESS_SCALE` divides the counts (CI runs the suite under valgrind with a larger divisor).

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

mod common;

use common::{all_closed_on_port, on_uring, pair, scaled, totals, Rng};
use runtime::net::{TcpListener, TcpStream};
use runtime::time::timeout;
use runtime::BufResult;

fn byte_at(i: usize) -> u8 {
    (i.wrapping_mul(31) % 251) as u8
}

/// Where a test's operations are started (and its sockets finally dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The reactor that owns the sockets.
    Owner,
    /// A pool thread: every operation is a handoff to the owner.
    Pool,
    /// Reactor 1, while reactor 0 owns the sockets.
    OtherReactor,
}

/// Runs `work` at `place` and returns its output.
async fn run_at<F>(place: Place, work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match place {
        Place::Owner => work.await,
        Place::Pool => runtime::pool::spawn(work).await.expect("pool task"),
        Place::OtherReactor => runtime::spawn_on(1, work).await.expect("reactor 1 task"),
    }
}

/// Reads dropped at random points while a sender streams numbered bytes: every byte arrives
/// once and in order, and no dropped read writes into memory reused after it. With `one_shot`
/// (multishot receive off), io_uring's reads are one-shot receives into the caller's buffer, so
/// the dropped ones the kernel completed anyway must come back through the salvage: both are
/// counted and checked.
async fn dropped_reads(one_shot: bool, place: Place) {
    let before = totals();
    let total = scaled(2 << 20);
    let (reader, writer) = pair().await;
    let port = reader.peer_addr().expect("peer").port();
    // The reads start before the sender runs: the first ones wait, and are dropped waiting.
    let reads = run_at(place, async move {
        let rng = Rng::new(0x5eed);
        let (mut received, mut dropped) = (0usize, 0u64);
        let mut progress = Instant::now();
        while received < total {
            let cap = 1 + rng.next() as usize % 4096;
            match timeout(rng.drop_after(), reader.read(vec![0xEEu8; cap])).await {
                Ok(BufResult(res, buf)) => {
                    let n = res.expect("read");
                    assert!(n > 0, "early EOF at {received}");
                    for (i, &b) in buf[..n].iter().enumerate() {
                        assert_eq!(
                            b,
                            byte_at(received + i),
                            "byte {} lost or reordered",
                            received + i
                        );
                    }
                    received += n;
                    progress = Instant::now();
                }
                Err(_) => {
                    dropped += 1;
                    assert!(
                        progress.elapsed() < Duration::from_secs(10),
                        "no byte for 10 s after {received}: a dropped read lost bytes"
                    );
                    // Reuse freed memory at once, and check the kernel never writes into it.
                    let watched = vec![0x77u8; cap];
                    runtime::yield_now().await;
                    assert!(
                        watched.iter().all(|&b| b == 0x77),
                        "a dropped read wrote into reused memory"
                    );
                }
            }
        }
        // Dropped here: at `place`, off the owner unless `Owner`.
        drop(reader);
        (received, dropped)
    });
    let sender = runtime::spawn(async move {
        let rng = Rng::new(0xfeed);
        let mut sent = 0;
        while sent < total {
            let n = (1 + rng.next() as usize % 3000).min(total - sent);
            let chunk: Vec<u8> = (sent..sent + n).map(byte_at).collect();
            let BufResult(res, _) = writer.write_all(chunk).await;
            res.expect("write");
            sent += n;
            if rng.next() % 8 == 0 {
                runtime::time::sleep(Duration::from_micros(rng.next() % 300)).await;
            }
        }
        writer
    });
    let (received, dropped) = reads.await;
    drop(sender.await.expect("sender"));
    assert_eq!(received, total);
    let used = totals().since(&before);
    eprintln!("{place:?}: verified {received} bytes through {dropped} dropped reads: {used:?}");
    // Every cancel counted is a dropped read (a read dropped before it started is not one).
    assert!(used.cancels <= dropped, "{dropped} dropped: {used:?}");
    if place == Place::Owner {
        assert!(
            used.cancels > 0,
            "no read was dropped after it started: {used:?}"
        );
    }
    // On the owner, dropped one-shot receives the kernel completed come back by the salvage
    // (off the owner, `DirectFirst` makes most reads direct syscalls instead).
    if on_uring() && one_shot && place == Place::Owner {
        assert!(used.one_shot_receives > 0, "no one-shot receive: {used:?}");
        assert!(
            used.salvaged > 0,
            "no read was answered by the salvage: {used:?}"
        );
    }
    all_closed_on_port(port).await;
}

#[runtime::test(timeout_secs = 300)]
async fn dropped_reads_lose_nothing_and_corrupt_nothing() {
    dropped_reads(false, Place::Owner).await;
}

#[runtime::test(timeout_secs = 300, multishot_receive = false)]
async fn dropped_reads_lose_nothing_and_corrupt_nothing_with_one_shot_reads() {
    dropped_reads(true, Place::Owner).await;
}

#[runtime::test(timeout_secs = 300, reactors = 2, pool_threads = 1)]
async fn reads_from_the_pool_dropped_lose_nothing() {
    dropped_reads(false, Place::Pool).await;
}

#[runtime::test(
    timeout_secs = 300,
    reactors = 2,
    pool_threads = 1,
    multishot_receive = false
)]
async fn reads_from_the_pool_dropped_lose_nothing_with_one_shot_reads() {
    dropped_reads(true, Place::Pool).await;
}

#[runtime::test(timeout_secs = 300, reactors = 2, pool_threads = 1)]
async fn reads_from_another_reactor_dropped_lose_nothing() {
    dropped_reads(false, Place::OtherReactor).await;
}

#[runtime::test(
    timeout_secs = 300,
    reactors = 2,
    pool_threads = 1,
    multishot_receive = false
)]
async fn reads_from_another_reactor_dropped_lose_nothing_with_one_shot_reads() {
    dropped_reads(true, Place::OtherReactor).await;
}

/// Accepts dropped at random points while a connector makes numbered connections: each is
/// accepted exactly once.
async fn dropped_accepts(place: Place) {
    let clients = scaled(400);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let before = totals();
    // The accepts start before the connector runs: the first ones wait, and are dropped.
    let accepts = run_at(place, async move {
        let rng = Rng::new(0xdead);
        let mut seen = HashSet::new();
        let mut dropped = 0u64;
        // A lost connection would leave this loop waiting for an accept that never comes: fail
        // when no new connection came for a while instead.
        let mut progress = Instant::now();
        while seen.len() < clients {
            match timeout(rng.drop_after(), listener.accept()).await {
                Ok(accepted) => {
                    let (s, _) = accepted.expect("accept");
                    let BufResult(res, buf) = s.read(vec![0u8; 4]).await;
                    assert_eq!(res.expect("read id"), 4);
                    let id = u32::from_le_bytes(buf[..4].try_into().expect("4 bytes"));
                    assert!(seen.insert(id), "connection {id} accepted twice");
                    progress = Instant::now();
                }
                Err(_) => {
                    dropped += 1;
                    assert!(
                        progress.elapsed() < Duration::from_secs(10),
                        "{} of {clients} connections accepted, then none for 10 s: a dropped \
                         accept lost a connection",
                        seen.len()
                    );
                }
            }
        }
        drop(listener);
        dropped
    });
    let connector = runtime::spawn(async move {
        let rng = Rng::new(0xacce);
        let mut streams = Vec::new();
        for id in 0..clients {
            let s = TcpStream::connect(addr).await.expect("connect");
            let BufResult(res, _) = s.write_all((id as u32).to_le_bytes().to_vec()).await;
            res.expect("send id");
            streams.push(s);
            if rng.next() % 4 == 0 {
                runtime::time::sleep(Duration::from_micros(rng.next() % 200)).await;
            }
        }
        streams
    });
    let dropped = accepts.await;
    drop(connector.await.expect("connector"));
    let used = totals().since(&before);
    assert!(used.cancels <= dropped, "{dropped} dropped: {used:?}");
    if on_uring() && place == Place::Owner {
        // Accepts the kernel completed after their futures were dropped: their connections
        // came back through the salvage.
        assert!(
            used.salvaged > 0,
            "no accept was answered by the salvage: {used:?}"
        );
    }
    all_closed_on_port(addr.port()).await;
    eprintln!(
        "{place:?}: accepted {clients} connections through {dropped} dropped accepts: {used:?}"
    );
}

#[runtime::test(timeout_secs = 300)]
async fn dropped_accepts_lose_no_connection() {
    dropped_accepts(Place::Owner).await;
}

#[runtime::test(timeout_secs = 300, reactors = 2, pool_threads = 1)]
async fn accepts_from_the_pool_dropped_lose_no_connection() {
    dropped_accepts(Place::Pool).await;
}

#[runtime::test(timeout_secs = 300, reactors = 2, pool_threads = 1)]
async fn accepts_from_another_reactor_dropped_lose_no_connection() {
    dropped_accepts(Place::OtherReactor).await;
}

/// Writes (and, on a reactor, connects) dropped at random points: the peer gets only bytes
/// that writes were given, and every socket is closed at the end.
async fn dropped_writes_and_connects(place: Place) {
    let rounds = scaled(2000);
    let (client, server) = pair().await;
    // Drain the server side so writes make progress now and then; every byte that arrives must
    // be one a write was given (a dropped write whose memory the kernel read after it was
    // reused would send other bytes).
    let drain = runtime::spawn(async move {
        let mut total = 0usize;
        loop {
            let BufResult(res, buf) = server.read(vec![0u8; 65536]).await;
            match res {
                Ok(0) | Err(_) => return total,
                Ok(n) => {
                    assert!(
                        buf[..n].iter().all(|&b| b == 0x55),
                        "bytes no write was given reached the peer"
                    );
                    total += n;
                }
            }
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client_port = client.peer_addr().expect("peer").port();
    let acceptor = runtime::spawn(async move {
        loop {
            if listener.accept().await.is_err() {
                return;
            }
        }
    });
    let before = totals();
    let dropped = run_at(place, async move {
        let rng = Rng::new(0x717e);
        let mut dropped = 0u64;
        for _ in 0..rounds {
            let size = 1 + rng.next() as usize % 200_000;
            if timeout(rng.drop_after(), client.write(vec![0x55u8; size]))
                .await
                .is_err()
            {
                dropped += 1;
                // Reuse the freed memory at once with other bytes.
                let reused = vec![0xAAu8; size];
                runtime::yield_now().await;
                drop(reused);
            }
            // Sockets are created on reactors only.
            if place != Place::Pool
                && timeout(rng.drop_after(), TcpStream::connect(addr))
                    .await
                    .is_err()
            {
                dropped += 1;
            }
        }
        drop(client);
        dropped
    })
    .await;
    let used = totals().since(&before);
    assert!(used.cancels <= dropped, "{dropped} dropped: {used:?}");
    if place == Place::Owner {
        assert!(
            used.cancels > 0,
            "no operation was dropped after it started: {used:?}"
        );
    }
    let drained = drain.await.expect("drain");
    acceptor.abort();
    let _ = acceptor.await;
    // Every connection made or abandoned here, and every accepted one, is closed.
    all_closed_on_port(addr.port()).await;
    all_closed_on_port(client_port).await;
    eprintln!("{place:?}: {rounds} rounds, {dropped} dropped writes and connects, {drained} bytes drained");
}

#[runtime::test(timeout_secs = 300)]
async fn dropped_writes_and_connects_are_memory_safe() {
    dropped_writes_and_connects(Place::Owner).await;
}

#[runtime::test(timeout_secs = 300, reactors = 2, pool_threads = 1)]
async fn writes_from_the_pool_dropped_are_memory_safe() {
    dropped_writes_and_connects(Place::Pool).await;
}

#[runtime::test(timeout_secs = 300, reactors = 2, pool_threads = 1)]
async fn writes_and_connects_from_another_reactor_dropped_are_memory_safe() {
    dropped_writes_and_connects(Place::OtherReactor).await;
}
