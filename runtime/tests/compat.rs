//! `compat::AsyncIo` under tokio's and futures-io's traits: bytes arrive whole and in order
//! through every path (lent syscalls and receive-queue copies, one-shot owned reads, staged
//! writes), reads and writes dropped at random points lose and duplicate nothing, and bytes a
//! write accepted reach the peer even when the adapter is dropped at once.

use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::time::Duration;

mod common;

use common::{pair, scaled, Rng};
use runtime::compat::AsyncIo;
use runtime::time::timeout;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn byte_at(i: usize) -> u8 {
    (i.wrapping_mul(131) % 251) as u8
}

fn pattern(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(byte_at).collect()
}

/// Sends `total` pattern bytes through tokio's `write`, `write_vectored` and `write_all`, then
/// shuts down; the peer reads them with `read_exact` and sees end of file.
async fn tokio_round_trip(total: usize) {
    let (a, b) = pair().await;
    let mut writer = AsyncIo::new(a);
    let mut reader = AsyncIo::new(b);
    let sender = runtime::spawn(async move {
        let mut sent = 0;
        let mut turn = 0usize;
        while sent < total {
            let n = (1 + turn * 977 % 20_000).min(total - sent);
            let chunk = pattern(sent, n);
            match turn % 3 {
                0 => writer.write_all(&chunk).await.expect("write_all"),
                1 => {
                    let (x, y) = chunk.split_at(n / 2);
                    let slices = [IoSlice::new(x), IoSlice::new(y)];
                    let w = writer
                        .write_vectored(&slices)
                        .await
                        .expect("write_vectored");
                    assert!(w > 0, "a vectored write took nothing");
                    sent += w;
                    turn += 1;
                    continue;
                }
                _ => {
                    let w = writer.write(&chunk).await.expect("write");
                    assert!(w > 0, "a write took nothing");
                    sent += w;
                    turn += 1;
                    continue;
                }
            }
            sent += n;
            turn += 1;
        }
        writer.flush().await.expect("flush");
        writer.shutdown().await.expect("shutdown");
        writer
    });
    let mut got = vec![0u8; total];
    reader.read_exact(&mut got).await.expect("read_exact");
    assert!(got == pattern(0, total), "bytes differ from what was sent");
    let mut rest = [0u8; 16];
    assert_eq!(reader.read(&mut rest).await.expect("read at eof"), 0);
    drop(sender.await.expect("sender"));
}

#[runtime::test]
async fn tokio_traits_carry_every_byte() {
    tokio_round_trip(4 << 20).await;
}

#[runtime::test(multishot_receive = false)]
async fn tokio_traits_carry_every_byte_with_one_shot_reads() {
    tokio_round_trip(1 << 20).await;
}

#[runtime::test]
async fn futures_io_traits_carry_every_byte() {
    use futures_io::{AsyncRead, AsyncWrite};
    let total = 1 << 20;
    let (a, b) = pair().await;
    let mut writer = AsyncIo::new(a);
    let mut reader = AsyncIo::new(b);
    let sender = runtime::spawn(async move {
        let data = pattern(0, total);
        let mut sent = 0;
        while sent < total {
            let end = (sent + 10_000).min(total);
            let mid = (sent + end) / 2;
            let slices = [
                IoSlice::new(&data[sent..mid]),
                IoSlice::new(&data[mid..end]),
            ];
            let n = poll_fn(|cx| Pin::new(&mut writer).poll_write_vectored(cx, &slices))
                .await
                .expect("write");
            assert!(n > 0);
            sent += n;
        }
        poll_fn(|cx| Pin::new(&mut writer).poll_close(cx))
            .await
            .expect("close");
    });
    let mut got = Vec::new();
    let mut buf = vec![0u8; 7000];
    loop {
        let n = poll_fn(|cx| Pin::new(&mut reader).poll_read(cx, &mut buf))
            .await
            .expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got == pattern(0, total), "bytes differ from what was sent");
    sender.await.expect("sender");
}

/// Both directions at once, every read and write under a timeout that drops it at a random
/// point; the bytes each side accepted or returned are counted and checked at the end.
async fn dropped_at_random_points(seed: u64) {
    let total = scaled(1 << 20);
    let (a, b) = pair().await;
    let (a_read, a_write) = a.into_split();
    let (b_read, b_write) = b.into_split();
    let send = |half, seed| {
        runtime::spawn(async move {
            let rng = Rng::new(seed);
            let mut io = AsyncIo::new(half);
            let mut sent = 0;
            let mut dropped = 0;
            while sent < total {
                let n = (1 + rng.next() as usize % 30_000).min(total - sent);
                let chunk = pattern(sent, n);
                match timeout(rng.drop_after(), io.write(&chunk)).await {
                    Ok(res) => sent += res.expect("write"),
                    Err(_) => dropped += 1,
                }
            }
            io.shutdown().await.expect("shutdown");
            dropped
        })
    };
    let receive = |half, seed| {
        runtime::spawn(async move {
            let rng = Rng::new(seed);
            let mut io = AsyncIo::new(half);
            let mut got = Vec::with_capacity(total);
            let mut buf = vec![0u8; 40_000];
            // Nothing was sent yet (the senders start after the receivers): this read waits,
            // and is dropped while it waits.
            let first = timeout(Duration::ZERO, io.read(&mut buf)).await;
            assert!(first.is_err(), "a read found bytes before any were sent");
            let mut dropped = 1;
            loop {
                let len = 1 + rng.next() as usize % buf.len();
                match timeout(rng.drop_after(), io.read(&mut buf[..len])).await {
                    Ok(Ok(0)) => break,
                    Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                    Ok(Err(e)) => panic!("read: {e}"),
                    Err(_) => dropped += 1,
                }
            }
            (got, dropped)
        })
    };
    let at_b = receive(b_read, seed ^ 0x1234);
    let at_a = receive(a_read, seed ^ 0x4321);
    let a_to_b = send(a_write, seed);
    let b_to_a = send(b_write, seed ^ 0xabcd);
    for (sender, receiver) in [(a_to_b, at_b), (b_to_a, at_a)] {
        let writes_dropped = sender.await.expect("sender");
        let (got, reads_dropped) = receiver.await.expect("receiver");
        assert_eq!(got.len(), total, "bytes lost or doubled");
        assert!(got == pattern(0, total), "bytes out of order or corrupted");
        eprintln!("dropped at random points: {writes_dropped} writes, {reads_dropped} reads");
    }
}

#[runtime::test(timeout_secs = 300)]
async fn reads_and_writes_dropped_at_random_points_lose_nothing() {
    dropped_at_random_points(0x5eed).await;
}

#[runtime::test(timeout_secs = 300, multishot_receive = false)]
async fn reads_and_writes_dropped_at_random_points_lose_nothing_with_one_shot_reads() {
    dropped_at_random_points(0xbeef).await;
}

/// The adapter is dropped while a write it accepted is still being sent (on io_uring the bytes
/// are staged and the socket buffer is full, so the send waits for the peer): the peer still
/// gets every byte, then end of file.
#[runtime::test]
async fn bytes_a_write_accepted_survive_dropping_the_adapter() {
    let (a, b) = pair().await;
    let mut writer = AsyncIo::new(a);
    let mut accepted = 0;
    // Write until a write cannot be taken: the socket buffers are full and (on io_uring) the
    // previous write's bytes wait in flight.
    loop {
        let chunk = pattern(accepted, 200_000);
        match timeout(Duration::from_millis(50), writer.write(&chunk)).await {
            Ok(res) => accepted += res.expect("write"),
            Err(_) => break,
        }
    }
    drop(writer);
    let mut reader = AsyncIo::new(b);
    let mut got = Vec::new();
    reader.read_to_end(&mut got).await.expect("read_to_end");
    assert_eq!(got.len(), accepted, "bytes lost or doubled");
    assert!(got == pattern(0, accepted), "bytes corrupted");
}

/// A pool thread polls the adapter of a socket a reactor owns: reads and writes go through the
/// handoff and still carry every byte.
#[runtime::test]
async fn an_adapter_polled_on_the_pool_carries_every_byte() {
    let total = 1 << 20;
    let (a, b) = pair().await;
    let on_pool = runtime::pool::spawn(async move {
        let mut io = AsyncIo::new(a);
        io.write_all(&pattern(0, total)).await.expect("write_all");
        io.shutdown().await.expect("shutdown");
        let mut back = Vec::new();
        io.read_to_end(&mut back).await.expect("read_to_end");
        back
    });
    let mut io = AsyncIo::new(b);
    let mut got = Vec::new();
    io.read_to_end(&mut got).await.expect("read_to_end");
    assert!(got == pattern(0, total), "pool to reactor: bytes differ");
    io.write_all(&got).await.expect("echo back");
    io.shutdown().await.expect("shutdown");
    let back = on_pool.await.expect("pool task");
    assert!(back == pattern(0, total), "reactor to pool: bytes differ");
}

/// The adapter works on Unix streams as on TCP: a megabyte each way, in order, then end of
/// file.
#[runtime::test]
async fn unix_streams_through_tokio_io() {
    let (a, b) = runtime::net::UnixStream::pair().expect("pair");
    let mut a = AsyncIo::new(a);
    let mut b = AsyncIo::new(b);
    let total = scaled(1 << 20);
    let writer = runtime::spawn(async move {
        a.write_all(&pattern(0, total)).await.expect("write_all");
        a.shutdown().await.expect("shutdown");
        a
    });
    let mut got = Vec::new();
    b.read_to_end(&mut got).await.expect("read_to_end");
    assert!(got == pattern(0, total), "every byte, in order");
    writer.await.expect("writer");
}

/// [`common::echoes_at_once`]'s server side through the adapter.
async fn echo_through_the_adapter(server: runtime::net::TcpStream) {
    let mut io = AsyncIo::new(server);
    let mut buf = vec![0u8; 8192];
    loop {
        match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => io.write_all(&buf[..n]).await.expect("echo"),
        }
    }
}

/// [`common::echoes_at_once`]'s client side through the adapter.
async fn round_trips_through_the_adapter(
    client: runtime::net::TcpStream,
    messages: Vec<Vec<u8>>,
) -> Vec<Vec<u8>> {
    let mut io = AsyncIo::new(client);
    let mut replies = Vec::new();
    for message in messages {
        io.write_all(&message).await.expect("write");
        let mut got = vec![0u8; message.len()];
        io.read_exact(&mut got).await.expect("read");
        replies.push(got);
    }
    replies
}

/// io_uring: a socket read through the adapter (hyper's reads) never receives late, even on a
/// reactor busy enough that owned reads do: its late receives found no data in the hyper
/// benchmark, and its multishot receive stays armed instead. Every reply comes back whole.
#[test]
fn reads_through_the_adapter_never_receive_late() {
    if !common::backends().contains(&runtime::Backend::Uring) {
        return;
    }
    let uring = || runtime::Builder::new().backend(runtime::Backend::Uring);
    let (reason, owned) = common::echoes_at_once(uring(), common::echo, common::owned_round_trips);
    if !reason.contains("late receives under load") {
        return eprintln!("skipped: no late receives here: {reason}");
    }
    let owned = owned.late_receives;
    assert!(
        owned > 0,
        "the load was not busy enough to test: {owned} late"
    );
    let (_, lent) = common::echoes_at_once(
        uring(),
        echo_through_the_adapter,
        round_trips_through_the_adapter,
    );
    assert_eq!(
        lent.late_receives, 0,
        "reads through the adapter received late"
    );
}
