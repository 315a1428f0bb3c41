//! Dropping operations while the kernel may own their memory.

use std::time::Duration;

mod common;

use common::pair;
use runtime::net::{TcpListener, TcpStream};
use runtime::time::timeout;
use runtime::BufResult;

#[runtime::test]
async fn dropped_read_never_writes_into_reused_memory() {
    let (client, server) = pair().await;
    for round in 0..64u8 {
        // Start a read and give up on it while the kernel owns its buffer.
        let res = timeout(Duration::from_millis(1), client.read(vec![0xAA; 4096])).await;
        assert!(
            res.is_err(),
            "no data was sent, the read must still be pending"
        );
        // New allocations of the same size may reuse freed memory: fill one and watch it.
        let watched = vec![round; 4096];
        let msg = vec![round ^ 0xFF; 100];
        let BufResult(res, _) = server.write_all(msg.clone()).await;
        res.expect("write");
        let mut got = Vec::new();
        while got.len() < msg.len() {
            let BufResult(res, buf) = client.read(vec![0u8; 4096]).await;
            let n = res.expect("read");
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(
            got, msg,
            "round {round}: data after a cancelled read arrives intact"
        );
        assert!(
            watched.iter().all(|&b| b == round),
            "round {round}: kernel wrote into reused memory"
        );
    }
}

#[runtime::test]
async fn dropping_a_stream_with_a_read_in_flight_is_safe() {
    let (client, server) = pair().await;
    let reader = runtime::spawn(async move {
        let BufResult(res, _) = client.read(vec![0u8; 1024]).await;
        res
    });
    runtime::yield_now().await;
    reader.abort(); // drops the read (kernel-owned buffer) and then the socket
    assert!(reader.await.expect_err("aborted").is_cancelled());
    // The peer sees the close.
    let BufResult(res, _) = server.read(vec![0u8; 16]).await;
    assert_eq!(res.expect("read"), 0);
}

#[runtime::test]
async fn dropped_accept_does_not_leak_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let res = timeout(Duration::from_millis(1), listener.accept()).await;
    assert!(res.is_err(), "nobody connected yet");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (server, _) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .expect("the next accept gets the connection")
        .expect("accept");
    let BufResult(res, _) = client.write_all(b"x".to_vec()).await;
    res.expect("write");
    let BufResult(res, buf) = server.read(vec![0u8; 4]).await;
    assert_eq!(&buf[..res.expect("read")], b"x");
}
