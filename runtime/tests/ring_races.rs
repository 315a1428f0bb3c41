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

use common::{scaled, spawn_echo_server};
use runtime::net::{TcpListener, TcpStream};
use runtime::BufResult;

/// Round trips of numbered messages through `stream`, each reply checked.
async fn round_trips(stream: TcpStream, rounds: usize, client: usize) {
    for round in 0..rounds {
        let msg = format!("{client:02}:{round:012}\n").into_bytes();
        let BufResult(res, _) = stream.write_all(msg.clone()).await;
        res.expect("write");
        let mut got = Vec::new();
        while got.len() < msg.len() {
            let BufResult(res, buf) = stream.read(vec![0u8; 64]).await;
            let n = res.expect("read");
            assert!(n > 0, "client {client}: the server closed at round {round}");
            got.extend_from_slice(&buf[..n]);
        }
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
#[runtime::test(reactors = 2, pool_threads = 0, wake = "msg-ring", ring_entries = 2)]
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

/// A socket whose multishot receive is armed is dropped on a pool thread while the reactor
/// sleeps; then, still from the pool, its peer ends the stream (the receive's last completion)
/// and a new connection arrives (accepted and read as soon as the reactor wakes, so its receive
/// queue may take the freed one's address). The drop's cancel must be decided when the reactor
/// gets to it, never aimed at an address: the new connection reads every byte, never
/// `ECANCELED`. Repeated, as the address is reused only some of the time.
#[runtime::test(
    reactors = 1,
    pool_threads = 1,
    wake = "timeout:20ms",
    timeout_secs = 300
)]
async fn a_stale_receive_cancel_never_reaches_a_new_connection() {
    use std::io::Write;

    let listener = std::rc::Rc::new(TcpListener::bind("127.0.0.1:0").expect("bind"));
    let addr = listener.local_addr().expect("addr");
    let mut previous: Option<(TcpStream, std::net::TcpStream)> = None;
    for round in 0..scaled(400) {
        let l = listener.clone();
        let accept = runtime::spawn(async move {
            let (server, _) = l.accept().await.expect("accept");
            let BufResult(res, buf) = server.read(vec![0u8; 8]).await;
            (res.map(|n| buf[..n].to_vec()), server)
        });
        runtime::yield_now().await; // the accept is submitted before the reactor sleeps
        let client = runtime::pool::spawn(async move {
            if let Some((server, client)) = previous {
                drop(server);
                let _ = client.shutdown(std::net::Shutdown::Write);
            }
            let mut client = std::net::TcpStream::connect(addr).expect("connect");
            client.write_all(&[1]).expect("write");
            client
        })
        .await
        .expect("pool task");
        let (first, server) = accept.await.expect("accept task");
        let first = first.unwrap_or_else(|e| panic!("round {round}: first read: {e}"));
        assert_eq!(first, [1], "round {round}");
        let mut client = client;
        client.write_all(&[2]).expect("write");
        let BufResult(res, buf) = server.read(vec![0u8; 8]).await;
        let second = res.map(|n| buf[..n].to_vec());
        let second = second.unwrap_or_else(|e| panic!("round {round}: second read: {e}"));
        assert_eq!(second, [2], "round {round}");
        previous = Some((server, client));
    }
}
