//! The io_uring driver's races between its reactor and other threads, under load: submission
//! queue pushes from other threads while the reactor takes its busy turns (`SqPoll`), and
//! pushes made while the reactor reaps (cancels of full receive queues, `MSG_RING` wakes) into
//! a ring too small to take them. Every byte must arrive, once, in order. The epoll variants
//! run the same load.
//!
//! `STRESS_SCALE` divides the counts (CI runs this file under valgrind with a larger divisor).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod common;

use common::{gettid, scaled, spawn_echo_server, wait_until_asleep};
use runtime::net::{TcpListener, TcpStream};
use runtime::BufResult;

/// Round trips of numbered messages through `stream`, each reply checked.
async fn round_trips(stream: TcpStream, rounds: usize, client: usize) {
    for round in 0..rounds {
        let msg = format!("{client:02}:{round:012}\n").into_bytes();
        let who = format!("client {client} at round {round}");
        let (msg, got) = common::write_and_read_back(&stream, msg, 64, &who).await;
        assert_eq!(got, msg, "client {client} round {round}");
    }
}

/// Pool threads push their SQEs straight into the ring (`SqPoll`) while the reactor, kept busy,
/// takes turns that never wait: every SQ access on either side must hold the SQ lock, or a tail
/// written back stale loses or replays SQEs.
#[runtime::test(
    reactors = 1,
    pool_threads = 2,
    wake = "sqpoll:50ms",
    timeout_secs = 300
)]
async fn sq_pushes_from_other_threads_race_the_busy_reactor() {
    let addr = spawn_echo_server();
    let busy = Arc::new(AtomicBool::new(true));
    let b = busy.clone();
    let spinner = runtime::spawn(async move {
        while b.load(Ordering::Acquire) {
            runtime::yield_now().await;
        }
    });
    let rounds = scaled(20_000);
    let mut clients = Vec::new();
    for client in 0..2 {
        let stream = TcpStream::connect(addr).await.expect("connect");
        clients.push(runtime::pool::spawn(round_trips(stream, rounds, client)));
    }
    for c in clients {
        c.await.expect("client on the pool");
    }
    busy.store(false, Ordering::Release);
    spinner.await.expect("spinner");
}

/// A two-entry ring, receive queues that fill (their cancel is pushed while reaping) and
/// operations handed off from another reactor (whose wakes are `MSG_RING`s pushed while
/// reaping): the pushes wait their turn, nothing is lost, nothing panics.
#[runtime::test(
    reactors = 2,
    pool_threads = 0,
    wake = "msg-ring",
    ring_entries = 2,
    timeout_secs = 300
)]
async fn pushes_while_reaping_into_a_full_ring() {
    full_ring_load().await;
}

async fn full_ring_load() {
    const CONNECTIONS: usize = 32;
    let chunk = 512;
    let chunks = scaled(64).max(16);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut pairs = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        // Arm the server's receive now, so that the writes below fill its queue unread.
        let BufResult(res, _) = client.write_all(vec![0u8; 1]).await;
        res.expect("write");
        let BufResult(res, _) = server.read(vec![0u8; 1]).await;
        assert_eq!(res.expect("read"), 1);
        pairs.push((client, server));
    }
    // Reactor 1 writes through reactor 0's sockets: handed-off operations whose completions
    // wake reactor 1 from inside reactor 0's reap.
    let mut writers = Vec::new();
    let mut servers = Vec::new();
    for (i, (client, server)) in pairs.into_iter().enumerate() {
        servers.push(server);
        writers.push(runtime::spawn_on(1, async move {
            for c in 0..chunks {
                let data = vec![(i + c) as u8; chunk];
                let BufResult(res, _) = client.write_all(data).await;
                res.expect("write from reactor 1");
            }
            client
        }));
    }
    let mut clients = Vec::new();
    for w in writers {
        clients.push(w.await.expect("writer"));
    }
    for (i, server) in servers.iter().enumerate() {
        let mut got = Vec::new();
        while got.len() < chunks * chunk {
            let BufResult(res, buf) = server.read(vec![0u8; 8192]).await;
            let n = res.expect("read");
            assert!(n > 0, "connection {i} ended early");
            got.extend_from_slice(&buf[..n]);
        }
        for (c, block) in got.chunks(chunk).enumerate() {
            assert!(
                block.iter().all(|&b| b == (i + c) as u8),
                "connection {i} chunk {c}"
            );
        }
    }
    drop(clients);
}

/// The window a cancel aimed at an address would hit: a socket whose multishot receive is armed
/// is dropped on a pool thread while the reactor sleeps in the kernel, then its peer ends the
/// stream, so the receive's last completion is reaped (and its queue freed) in the same turn
/// that the drop's cancel arrived in. The reactor then at once accepts a connection it already
/// holds (salvaged from a dropped accept) and reads it: its new receive queue may take the freed
/// address, and its receive is armed before the reactor handles the drop. A cancel built on the
/// pool thread for that address would cancel the new receive (`ECANCELED`); the reactor must
/// decide, with the old queue still pinned. Repeated, as the address is reused only some of
/// the time.
#[runtime::test(
    reactors = 1,
    pool_threads = 1,
    wake = "timeout:20ms",
    timeout_secs = 300
)]
async fn a_stale_receive_cancel_never_reaches_a_new_connection() {
    use std::io::Write;

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let reactor = gettid();
    // The first connection, its multishot receive armed by a read that found its byte.
    let mut peer = std::net::TcpStream::connect(addr).expect("connect");
    peer.set_nodelay(true).expect("nodelay");
    let (mut server, _) = listener.accept().await.expect("accept");
    for round in 0..scaled(100) {
        peer.write_all(&[1]).expect("write");
        let BufResult(res, buf) = server.read(vec![0u8; 8]).await;
        let n = res.unwrap_or_else(|e| panic!("round {round}: read: {e}"));
        assert_eq!(&buf[..n], [1], "round {round}");
        // The next connection waits in the salvage of a dropped accept: accepting it later
        // takes no submission.
        let next_peer = std::net::TcpStream::connect(addr).expect("connect");
        next_peer.set_nodelay(true).expect("nodelay");
        let mut accept = Box::pin(listener.accept());
        // On epoll the accept is done at once; on io_uring it is submitted, then dropped.
        let accepted = common::poll_once(accept.as_mut()).await;
        drop(accept);
        runtime::yield_now().await;
        let old_peer = peer;
        runtime::pool::spawn(async move {
            wait_until_asleep(&[reactor]);
            drop(server);
            old_peer
                .shutdown(std::net::Shutdown::Write)
                .expect("shutdown");
        })
        .await
        .expect("pool task");
        let next_server = match accepted {
            Some(res) => res.expect("accept").0,
            None => listener.accept().await.expect("the salvaged connection").0,
        };
        let read = next_server.read(vec![0u8; 8]);
        let mut next_peer = next_peer;
        next_peer.write_all(&[2]).expect("write");
        let BufResult(res, buf) = read.await;
        let n = res.unwrap_or_else(|e| panic!("round {round}: the new connection's read: {e}"));
        assert_eq!(&buf[..n], [2], "round {round}");
        (server, peer) = (next_server, next_peer);
    }
}
