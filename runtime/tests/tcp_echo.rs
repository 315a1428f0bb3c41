//! Data integrity over TCP on every backend.

mod common;

use std::time::Duration;

use common::{pair, raise_fd_limit, spawn_echo_server};
use runtime::net::{OwnedReadHalf, TcpStream};
use runtime::time::timeout;
use runtime::BufResult;

/// A deterministic byte pattern that differs at every offset of a 251-byte period.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Reads `len` bytes, `chunk` at a time; panics if the peer closes first.
async fn read_exactly(read_half: &OwnedReadHalf, len: usize, chunk: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    let mut buf = vec![0u8; chunk];
    while got.len() < len {
        let BufResult(res, b) = read_half.read(buf).await;
        let n = res.expect("read");
        assert!(n > 0, "the peer closed after {} bytes", got.len());
        got.extend_from_slice(&b[..n]);
        buf = b;
    }
    got
}

#[runtime::test]
async fn echo_one_mebibyte_in_odd_chunks() {
    let addr = spawn_echo_server();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let data = pattern(1 << 20);
    let (read_half, write_half) = stream.into_split();
    let expected = data.clone();
    let writer = runtime::spawn(async move {
        let mut off = 0;
        let mut chunk = 1;
        while off < data.len() {
            let end = (off + chunk).min(data.len());
            let BufResult(res, _) = write_half.write_all(data[off..end].to_vec()).await;
            res.expect("write");
            off = end;
            chunk = chunk * 7 % 4093 + 1; // odd sizes from 1 to 4093 bytes
        }
        write_half
    });
    let got = read_exactly(&read_half, expected.len(), 3001).await;
    writer.await.expect("writer task");
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "echoed bytes differ from what was sent");
}

/// A write far larger than the socket's send buffer goes out in many sends, each of the bytes
/// the ones before left, and arrives whole and in order; an empty write sends nothing and is no
/// error.
#[runtime::test]
async fn write_all_far_larger_than_the_send_buffer_arrives_whole() {
    let (writer, reader) = pair().await;
    let (reader, _) = reader.into_split();
    let data = pattern(8 << 20);
    let expected = data.clone();
    let reading = runtime::spawn(async move {
        let got = read_exactly(&reader, expected.len(), 65536).await;
        assert!(got == expected, "the bytes arrived changed or out of order");
    });
    let BufResult(res, back) = timeout(Duration::from_secs(60), writer.write_all(data))
        .await
        .expect("the write ended");
    res.expect("write_all");
    assert_eq!(back.len(), 8 << 20, "the buffer came back whole");
    timeout(Duration::from_secs(60), reading)
        .await
        .expect("the reader ended")
        .expect("reader");

    let BufResult(res, back) = writer.write_all(Vec::new()).await;
    res.expect("an empty write is no error");
    assert!(back.is_empty());
}

#[runtime::test]
async fn thousand_concurrent_connections() {
    // Both ends of 1,000 connections, for each backend's run of this test at once, and the
    // other tests of this binary.
    raise_fd_limit(2 * 2 * 1000 + 512);
    let addr = spawn_echo_server();
    let clients: Vec<_> = (0..1000u32)
        .map(|i| {
            runtime::spawn(async move {
                let stream = TcpStream::connect(addr).await?;
                let msg = format!("hello from client {i}").into_bytes();
                let BufResult(res, msg) = stream.write_all(msg).await;
                res?;
                let mut got = Vec::new();
                let mut buf = vec![0u8; 64];
                while got.len() < msg.len() {
                    let BufResult(res, b) = stream.read(buf).await;
                    let n = res?;
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&b[..n]);
                    buf = b;
                }
                assert_eq!(got, msg);
                std::io::Result::Ok(())
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client task").expect("client io");
    }
}

#[runtime::test]
async fn vectored_write_and_read() {
    let addr = spawn_echo_server();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let parts = vec![b"one ".to_vec(), b"two ".to_vec(), b"three".to_vec()];
    let BufResult(res, _) = stream.writev(parts).await;
    assert_eq!(res.expect("writev"), 13);
    let mut got = Vec::new();
    while got.len() < 13 {
        let bufs = vec![Vec::with_capacity(5), Vec::with_capacity(100)];
        let BufResult(res, bufs) = stream.readv(bufs).await;
        let n = res.expect("readv");
        assert!(n > 0);
        let joined: Vec<u8> = bufs.concat();
        assert_eq!(
            joined.len(),
            n,
            "readv set the buffers' lengths to what it read"
        );
        got.extend_from_slice(&joined);
    }
    assert_eq!(got, b"one two three");
}
