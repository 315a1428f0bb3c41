//! Peers that misbehave: resets in the middle of a transfer, a slowloris, a peer that never
//! reads. Each gets a clear error or bounded resources, never a panic or a hang.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

mod common;

use common::pair;
use runtime::net::TcpStream;
use runtime::time::timeout;
use runtime::BufResult;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("rss");
    pages * 4096
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

#[runtime::test]
async fn reset_in_the_middle_of_a_write_is_an_error() {
    let (writer, peer) = pair().await;
    let resetter = runtime::spawn(async move {
        let mut got = 0;
        while got < 100_000 {
            let BufResult(res, _) = peer.read(vec![0u8; 65536]).await;
            got += res.expect("peer read");
        }
        peer.set_linger(Some(Duration::ZERO)).expect("linger");
    });
    let BufResult(res, _) = timeout(
        Duration::from_secs(30),
        writer.write_all(vec![7u8; 64 << 20]),
    )
    .await
    .expect("the write ends once the peer resets");
    let err = res.expect_err("64 MiB cannot all go to a peer that reset");
    assert!(is_reset(&err), "{err}");
    resetter.await.expect("resetter");
}

#[runtime::test]
async fn reset_in_the_middle_of_a_read_is_an_error() {
    let (reader, peer) = pair().await;
    let reading = runtime::spawn(async move {
        let mut got = 0;
        loop {
            let BufResult(res, _) = reader.read(vec![0u8; 1000]).await;
            match res {
                Ok(0) => return Ok(got),
                Ok(n) => got += n,
                Err(e) => return Err(e),
            }
        }
    });
    let BufResult(res, _) = peer.write_all(vec![1u8; 10_000]).await;
    res.expect("write");
    runtime::yield_now().await;
    peer.set_linger(Some(Duration::ZERO)).expect("linger");
    drop(peer);
    let res = timeout(Duration::from_secs(10), reading)
        .await
        .expect("no hang")
        .expect("task");
    match res {
        Err(e) => assert!(is_reset(&e), "{e}"),
        Ok(n) => panic!("a reset connection read as a clean EOF after {n} bytes"),
    }
}

#[runtime::test]
async fn a_slowloris_does_not_hold_up_other_clients() {
    let addr = common::spawn_echo_server();
    // One byte every 100 ms, from a thread of its own.
    let slow = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let started = Instant::now();
        for &b in b"slowloris!" {
            s.write_all(&[b]).expect("trickle");
            let mut echo = [0u8; 1];
            s.read_exact(&mut echo).expect("echo");
            assert_eq!(echo[0], b);
            std::thread::sleep(Duration::from_millis(100));
        }
        started.elapsed()
    });
    // Meanwhile a normal client gets its round trips.
    let fast = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    for i in 0..200u32 {
        let msg = i.to_le_bytes().to_vec();
        let BufResult(res, _) = fast.write_all(msg.clone()).await;
        res.expect("write");
        let BufResult(res, buf) = fast.read(vec![0u8; 4]).await;
        assert_eq!(&buf[..res.expect("read")], &msg[..]);
    }
    let fast_took = started.elapsed();
    let slow_took = runtime::pool::spawn_blocking(move || slow.join().expect("slow client"))
        .await
        .expect("join");
    assert!(
        fast_took < slow_took,
        "200 round trips ({fast_took:?}) finished while the slowloris trickled ({slow_took:?})"
    );
}

/// Offers 256 MiB to a peer that never reads: the writes stop at the socket buffers and the
/// process's memory stays bounded.
async fn writes_to_a_peer_that_never_reads() {
    let (writer, _never_reads) = pair().await;
    let before = rss_bytes();
    let chunk = vec![9u8; 1 << 20];
    let mut written = 0usize;
    for _ in 0..256 {
        match timeout(Duration::from_millis(200), writer.write_all(chunk.clone())).await {
            Ok(BufResult(res, _)) => {
                res.expect("write");
                written += chunk.len();
            }
            Err(_) => break, // backpressure: the write waits for a reader that never comes
        }
    }
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        written < 256 << 20,
        "the writes must stop at the socket buffers"
    );
    assert!(grown < 64 << 20, "memory grew by {grown} bytes");
    eprintln!("offered 256 MiB, {written} bytes taken before backpressure, rss grew {grown} bytes");
}

/// Set in the child process that runs the memory test alone.
const ALONE: &str = "HOSTILE_MEMORY_ALONE";

/// The memory test measures the whole process's RSS, so it runs alone: in a child process
/// (this test binary, re-executed for this test only), on every backend in turn.
#[test]
fn a_peer_that_never_reads_holds_memory_bounded() {
    if std::env::var(ALONE).is_err() {
        let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "a_peer_that_never_reads_holds_memory_bounded",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ALONE, "1")
            .status()
            .expect("run the memory test alone");
        assert!(
            status.success(),
            "the memory test failed in its own process"
        );
        return;
    }
    for backend in common::backends() {
        runtime::Builder::new()
            .backend(backend)
            .block_on(async move {
                common::assert_backend(backend);
                writes_to_a_peer_that_never_reads().await
            });
    }
}
