//! What safe code must never be able to do, written as a user would write the misuse: poll an
//! operation on one thread and finish it on another, drop things on foreign threads, read into a
//! window past a buffer's initialised bytes. On both backends; CI also runs this file under
//! valgrind, which reports any write by the kernel into memory that was given back.

use std::future::Future;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::pair;
use runtime::net::{TcpListener, TcpStream};
use runtime::{BufResult, IoBuf, JoinHandle};

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Where an operation started on reactor 0 is finished.
#[derive(Debug, Clone, Copy)]
enum Elsewhere {
    Pool,
    Reactor1,
}

impl Elsewhere {
    fn finish<T: Send + 'static>(self, fut: Boxed<T>) -> JoinHandle<T> {
        match self {
            Elsewhere::Pool => runtime::pool::spawn(fut),
            Elsewhere::Reactor1 => runtime::spawn_on(1, fut),
        }
    }
}

/// Starts `fut` on this reactor (reactor 0), then finishes it `there`; runs `meanwhile` on this
/// reactor before waiting for the result.
async fn move_op<T: Send + 'static>(
    there: Elsewhere,
    mut fut: Boxed<T>,
    meanwhile: impl Future<Output = ()>,
) -> T {
    if let Some(done) = common::poll_once(fut.as_mut()).await {
        meanwhile.await;
        return done;
    }
    let handle = there.finish(fut);
    meanwhile.await;
    handle.await.expect("the moved operation's task")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
}

/// Reads exactly `len` bytes.
async fn read_exact(s: &TcpStream, len: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(len);
    while got.len() < len {
        let BufResult(res, buf) = s.read(vec![0u8; 64 << 10]).await;
        let n = res.expect("read");
        assert!(
            n > 0,
            "early end of stream after {} of {len} bytes",
            got.len()
        );
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Every operation kind, started on reactor 0 and finished on a pool thread and on reactor 1,
/// with the bytes (or the connection) checked.
async fn every_operation_finishes_elsewhere() {
    for there in [Elsewhere::Pool, Elsewhere::Reactor1] {
        // accept: polled here, then finished there; the connection arrives meanwhile.
        let listener = Arc::new(TcpListener::bind("127.0.0.1:0").expect("bind"));
        let addr = listener.local_addr().expect("addr");
        let l = listener.clone();
        let client = Arc::new(std::sync::Mutex::new(None));
        let c = client.clone();
        let (server, peer) = move_op(
            there,
            Box::pin(async move { l.accept().await }),
            async move {
                *c.lock().unwrap() = Some(TcpStream::connect(addr).await.expect("connect"));
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{there:?}: accept finished elsewhere: {e}"));
        let client = client.lock().unwrap().take().expect("client");
        assert_eq!(peer, client.local_addr().expect("client addr"), "{there:?}");
        let BufResult(res, _) = client.write_all(b"to the accepted".to_vec()).await;
        res.expect("write");
        assert_eq!(
            read_exact(&server, 15).await,
            b"to the accepted",
            "{there:?}"
        );

        // connect: polled here, then finished there.
        let connect: Boxed<_> = Box::pin(async move { TcpStream::connect(addr).await });
        let connected = move_op(there, connect, async {})
            .await
            .expect("connect finished elsewhere");
        let (accepted, _) = listener.accept().await.expect("accept");
        let BufResult(res, _) = connected.write_all(b"connected".to_vec()).await;
        res.expect("write");
        assert_eq!(read_exact(&accepted, 9).await, b"connected", "{there:?}");

        // read: polled here (nothing to read yet), finished there; the bytes come meanwhile.
        let (client, server) = pair().await;
        let server = Arc::new(server);
        let s = server.clone();
        let read: Boxed<_> = Box::pin(async move { s.read(vec![0u8; 64]).await });
        let BufResult(res, buf) = move_op(there, read, async {
            let BufResult(res, _) = client.write_all(b"payload".to_vec()).await;
            res.expect("write");
        })
        .await;
        assert_eq!(
            &buf[..res.expect("read finished elsewhere")],
            b"payload",
            "{there:?}"
        );

        // readv: the same, into two buffers.
        let s = server.clone();
        let readv: Boxed<_> =
            Box::pin(async move { s.readv(vec![vec![0u8; 3], vec![0u8; 16]]).await });
        let BufResult(res, bufs) = move_op(there, readv, async {
            let BufResult(res, _) = client.write_all(b"abcdefg".to_vec()).await;
            res.expect("write");
        })
        .await;
        let n = res.expect("readv finished elsewhere");
        let got: Vec<u8> = bufs.concat();
        assert_eq!(&got[..n], &b"abcdefg"[..n], "{there:?}");
        let rest = read_exact(&server, 7 - n).await;
        assert_eq!([&got[..n], &rest[..]].concat(), b"abcdefg", "{there:?}");

        // write: a large one, which cannot finish before the peer reads.
        let data = pattern(4 << 20, 1);
        let s = server.clone();
        let sent = data.clone();
        let write: Boxed<_> = Box::pin(async move { s.write_all(sent).await.0 });
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let g = got.clone();
        let reader = &client;
        move_op(there, write, async move {
            *g.lock().unwrap() = read_exact(reader, 4 << 20).await;
        })
        .await
        .expect("write finished elsewhere");
        assert!(
            *got.lock().unwrap() == data,
            "{there:?}: the written bytes differ"
        );

        // writev.
        let s = server.clone();
        let writev: Boxed<_> =
            Box::pin(async move { s.writev(vec![b"vec".to_vec(), b"tored".to_vec()]).await.0 });
        let n = move_op(there, writev, async {})
            .await
            .expect("writev finished elsewhere");
        assert_eq!(read_exact(&client, n).await, &b"vectored"[..n], "{there:?}");

        // shutdown: the peer sees the end of the stream.
        let s = server.clone();
        let shutdown: Boxed<_> = Box::pin(async move { s.shutdown(Shutdown::Write).await });
        move_op(there, shutdown, async {})
            .await
            .expect("shutdown finished elsewhere");
        let BufResult(res, _) = client.read(vec![0u8; 16]).await;
        assert_eq!(
            res.expect("read"),
            0,
            "{there:?}: the shutdown reached the peer"
        );
    }
}

#[runtime::test(reactors = 2, pool_threads = 1)]
async fn every_operation_finishes_on_another_thread() {
    every_operation_finishes_elsewhere().await;
}

#[runtime::test(reactors = 2, pool_threads = 1, multishot_receive = false)]
async fn every_operation_finishes_on_another_thread_with_one_shot_reads() {
    every_operation_finishes_elsewhere().await;
}

/// Dropped on another thread while the kernel may still hold it, an operation started on its
/// reactor keeps its memory until the kernel lets go: the buffer's memory, reused at once, is
/// never written.
#[runtime::test(reactors = 2, pool_threads = 1, multishot_receive = false)]
async fn an_operation_dropped_on_another_thread_keeps_its_memory() {
    let (client, server) = pair().await;
    let server = Arc::new(server);
    for round in 0..32u8 {
        let s = server.clone();
        let mut read: Boxed<_> = Box::pin(async move { s.read(vec![0xAA; 4096]).await });
        assert!(
            common::poll_once(read.as_mut()).await.is_none(),
            "nothing was sent yet"
        );
        runtime::pool::spawn(async move { drop(read) })
            .await
            .expect("drop on the pool");
        // Allocations of the same size may reuse the freed memory: fill one and watch it.
        let watched = vec![round; 4096];
        let BufResult(res, _) = client.write_all(vec![round ^ 0xFF; 100]).await;
        res.expect("write");
        assert_eq!(
            read_exact(&server, 100).await,
            vec![round ^ 0xFF; 100],
            "round {round}"
        );
        assert!(
            watched.iter().all(|&b| b == round),
            "round {round}: kernel wrote into reused memory"
        );
    }
}

/// A read into a window past a `Vec`'s initialised bytes: the `Vec` grows only over bytes that
/// were written (the gap before the window is zeroed, never left as stale heap contents).
#[runtime::test]
async fn a_read_into_a_window_never_exposes_uninitialised_bytes() {
    let (client, server) = pair().await;
    // Leave stale contents in the allocator for the next allocation of this size.
    drop(vec![0xEEu8; 64]);
    let BufResult(res, _) = client.write_all(b"hi".to_vec()).await;
    res.expect("write");
    let BufResult(res, slice) = server.read(Vec::<u8>::with_capacity(64).slice(32..)).await;
    assert_eq!(res.expect("read"), 2);
    let v = slice.into_inner();
    assert_eq!(v.len(), 34);
    assert!(
        v[..32].iter().all(|&b| b == 0),
        "the gap holds bytes never written: {:?}",
        &v[..32]
    );
    assert_eq!(&v[32..], b"hi");
}

/// An accept awaited on a pool thread delivers its connection, registered with the listener's
/// reactor, usable from there and from the pool.
#[runtime::test(reactors = 1, pool_threads = 1)]
async fn an_accept_on_the_pool_delivers_the_connection() {
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").expect("bind"));
    let addr = listener.local_addr().expect("addr");
    let client = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        s.write_all(b"ping").expect("write");
        let mut reply = [0u8; 4];
        s.read_exact(&mut reply)
            .expect("the connection accepted on the pool answers");
        reply
    });
    let l = listener.clone();
    let (stream, _) = runtime::pool::spawn(async move { l.accept().await })
        .await
        .expect("pool task")
        .expect("an accept on the pool gets the connection");
    assert_eq!(read_exact(&stream, 4).await, b"ping");
    let BufResult(res, _) = stream.write_all(b"pong".to_vec()).await;
    res.expect("write");
    assert_eq!(&client.join().expect("client"), b"pong");
}

/// A write handed off from a pool thread and dropped, then its socket dropped there, then a new
/// socket made on that thread (which may get the same fd number): the write's bytes go to the
/// first connection or nowhere, never to the new socket's peer. The reactor is held (blocked)
/// until the pool thread has done all of it, so that every handoff is still queued by then.
#[runtime::test(reactors = 1, pool_threads = 1, wake = "eventfd")]
async fn a_socket_dropped_on_the_pool_is_closed_after_its_queued_writes() {
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let other_addr = other.local_addr().expect("addr");
    let (first_peer, first) = pair().await;
    let (done, pool_finished) = std::sync::mpsc::channel();
    let pool_task = runtime::pool::spawn(async move {
        let mut write: Boxed<_> = Box::pin(async move {
            let r = first.write_all(vec![b'X'; 1 << 16]).await.0;
            (r, first)
        });
        // On io_uring the write is handed off; on epoll it is made at once. Then it is dropped,
        // and the socket with it.
        drop(common::poll_once(write.as_mut()).await);
        drop(write);
        let second = std::net::TcpStream::connect(other_addr).expect("connect");
        done.send(()).expect("send");
        second
    });
    pool_finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the pool task finished");
    let second = pool_task.await.expect("pool task");
    // The first connection gets the write's bytes, if any, then its end: everything the pool
    // handed off has gone through the reactor.
    loop {
        let BufResult(res, buf) = first_peer.read(vec![0u8; 1 << 16]).await;
        match res.expect("read") {
            0 => break,
            n => assert!(buf[..n].iter().all(|&b| b == b'X')),
        }
    }
    let (mut accepted, _) = other.accept().expect("accept");
    second.shutdown(Shutdown::Write).expect("shutdown");
    accepted
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut misdelivered = Vec::new();
    accepted.read_to_end(&mut misdelivered).expect("read");
    assert!(
        misdelivered.is_empty(),
        "{} bytes of a dropped socket's write reached another connection",
        misdelivered.len()
    );
}

/// A `write_all` dropped between its sends: the peer reads nothing (both socket buffers are
/// tiny), so the first send takes what fits and the next one waits in the kernel for room. The
/// dropped write's buffer stays alive until the kernel is done with it, so memory the program
/// allocates and scribbles on meanwhile never reaches the peer: what arrives is a prefix of
/// what was written.
#[runtime::test]
async fn a_write_all_dropped_between_its_sends_keeps_its_buffer() {
    const LEN: usize = 4 << 20;
    const SCRIBBLE: usize = 64 << 10;
    let (client, server) = pair().await;
    socket2::SockRef::from(&server)
        .set_recv_buffer_size(4096)
        .expect("SO_RCVBUF");
    // Little queued in the sender too, so that the peer drains it quickly at the end.
    socket2::SockRef::from(&client)
        .set_send_buffer_size(4096)
        .expect("SO_SNDBUF");
    let data: Vec<u8> = (0..LEN).map(|i| common::stream_byte(1, i)).collect();
    let mut write = Box::pin(client.write_all(data));
    for _ in 0..3 {
        let polled = common::poll_once(write.as_mut()).await;
        assert!(polled.is_none(), "4 MiB went to a peer that reads nothing");
        runtime::yield_now().await;
    }
    drop(write);
    let (at, scribbled) =
        common::scribble_and_read_what_arrived(client, &server, 1, SCRIBBLE).await;
    assert!(
        0 < at && at < LEN,
        "the write sent {at} bytes before its drop"
    );
    drop(scribbled);
}
