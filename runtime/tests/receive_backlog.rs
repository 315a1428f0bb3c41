//! Data that arrives while nobody reads is all delivered later, whole and in order: on io_uring
//! it piles up in the multishot receive's provided buffers until a socket's share is full and,
//! with many such sockets, until the ring's buffers run out (reads then fall back to one-shot
//! receives); on epoll it waits in the kernel.

mod common;

use common::{on_uring, pair, totals};
use runtime::net::TcpStream;
use runtime::BufResult;

/// Connections that each leave data unread: at up to 8 buffers each, together more than the
/// ring's 512 provided buffers.
const CONNECTIONS: usize = 160;
/// Bytes each client sends before the server reads past the first byte.
const BYTES: usize = 64 * 1024;

/// Connection `i`'s bytes: a period that differs per connection and per offset.
fn pattern(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| ((k * 7 + i * 13) % 251) as u8).collect()
}

/// Reads `len` bytes, alternating `read` with odd sizes and two-buffer `readv`.
async fn read_exactly(s: &TcpStream, len: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    let mut turn = 0usize;
    while got.len() < len {
        turn += 1;
        let n = if turn % 2 == 0 {
            let BufResult(res, b) = s.read(vec![0u8; 1000 + turn % 3001]).await;
            let n = res.expect("read");
            got.extend_from_slice(&b[..n]);
            n
        } else {
            let bufs = vec![Vec::with_capacity(777), Vec::with_capacity(5000)];
            let BufResult(res, bufs) = s.readv(bufs).await;
            let n = res.expect("readv");
            for b in &bufs {
                got.extend_from_slice(b);
            }
            n
        };
        assert!(n > 0, "closed early after {} of {len} bytes", got.len());
    }
    got
}

#[runtime::test(timeout_secs = 60)]
async fn data_left_unread_on_many_sockets_arrives_whole_and_in_order() {
    let mut pairs = Vec::new();
    for _ in 0..CONNECTIONS {
        pairs.push(pair().await);
    }
    let before = totals();
    // One byte read per server socket first, so each has a receive armed while data arrives.
    for (i, (client, server)) in pairs.iter().enumerate() {
        let BufResult(res, _) = client.write_all(pattern(i, 1)).await;
        res.expect("first byte");
        let BufResult(res, b) = server.read(vec![0u8; 1]).await;
        assert_eq!(res.expect("read first byte"), 1);
        assert_eq!(b[0], pattern(i, 1)[0]);
    }
    let mut writers = Vec::new();
    let mut servers = Vec::new();
    for (i, (client, server)) in pairs.into_iter().enumerate() {
        writers.push(runtime::spawn(async move {
            let BufResult(res, _) = client.write_all(pattern(i, BYTES)[1..].to_vec()).await;
            res.expect("write");
            client
        }));
        servers.push(server);
    }
    let mut clients = Vec::new();
    for w in writers {
        clients.push(w.await.expect("writer"));
    }
    for (i, server) in servers.iter().enumerate() {
        let got = read_exactly(server, BYTES - 1).await;
        assert!(
            got == pattern(i, BYTES)[1..],
            "connection {i}: bytes differ from what was sent"
        );
    }
    if on_uring() {
        // The ring's buffers ran out (`ENOBUFS`): some reads fell back to one-shot receives.
        let used = totals().since(&before);
        assert!(used.one_shot_receives > 0, "no ENOBUFS fallback: {used:?}");
    }
    // End of file after the data, and again on the next read.
    drop(clients);
    for server in &servers {
        for _ in 0..2 {
            let BufResult(res, _) = server.read(vec![0u8; 16]).await;
            assert_eq!(res.expect("read at end"), 0);
        }
    }
}

/// Sockets dropped while their multishot receive holds unread buffers give those buffers back
/// to the ring: after three rounds of 40 connections each dropped with a full queue (about 960
/// buffers' worth, the ring has 512), a new connection's reads still come from the multishot
/// receive (all but a few), not from one-shot receives of a ring run dry.
#[runtime::test]
async fn buffers_of_dropped_sockets_go_back_to_the_ring() {
    if !on_uring() {
        return; // epoll holds no buffers
    }
    for _ in 0..3 {
        let mut dropped = Vec::new();
        for _ in 0..40 {
            let (client, server) = pair().await;
            client
                .write_all(vec![7u8; 64 * 1024])
                .await
                .0
                .expect("write");
            // One byte read arms the receive, which then fills its queue (8 buffers).
            let BufResult(n, _) = server.read(vec![0u8; 1]).await;
            assert_eq!(n.expect("read"), 1);
            dropped.push((client, server));
        }
        drop(dropped);
    }
    let before = totals().one_shot_receives;
    let (client, server) = pair().await;
    for i in 0..100u8 {
        client.write_all(vec![i; 100]).await.0.expect("write");
        let got = read_exactly(&server, 100).await;
        assert!(got.iter().all(|&b| b == i));
    }
    // The last round's buffers come back as its cancels complete, a turn or two in: a read
    // or two may find the ring dry before then, not the hundred of a ring that lost them.
    let one_shot = totals().one_shot_receives - before;
    assert!(
        one_shot < 10,
        "{one_shot} one-shot receives: the dropped sockets' buffers never came back"
    );
}
