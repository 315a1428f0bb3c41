//! Dropping operations while the kernel may own their memory.

use std::future::Future;
use std::time::Duration;

mod common;

use common::{on_uring, pair, totals};
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

/// A read whose bytes arrived before it was dropped: the next read returns them. On io_uring
/// without multishot receive the dropped read is a one-shot receive the kernel completed, and
/// its bytes come back through the salvage (counted); with multishot they wait in the receive
/// queue; on epoll the dropped read never took them.
async fn read_dropped_after_its_bytes_arrived(one_shot: bool) {
    let (client, server) = pair().await;
    let before = totals();
    for round in 0..16u8 {
        let msg = vec![round; 10 + round as usize];
        // Boxed, so that `drop` below drops the future itself (a `pin!` would only drop a
        // reference to it).
        let mut read = Box::pin(client.read(vec![0u8; 64]));
        // Started, and waiting: nothing was sent yet.
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(read.as_mut().poll(cx))).await;
        assert!(first.is_pending(), "round {round}: nothing was sent yet");
        let BufResult(res, _) = server.write_all(msg.clone()).await;
        res.expect("write");
        // The write's completion came in the same ring turn as the read's, or after it: give
        // the reactor one more turn so the read's result is in, then drop the read unpolled.
        runtime::yield_now().await;
        drop(read);
        let BufResult(res, buf) = timeout(Duration::from_secs(10), client.read(vec![0u8; 64]))
            .await
            .expect("the bytes of the dropped read were lost: the next read got nothing");
        let n = res.expect("read");
        assert_eq!(&buf[..n], &msg[..], "round {round}");
    }
    let used = totals().since(&before);
    if on_uring() && one_shot {
        assert!(used.one_shot_receives >= 16, "one-shot receives: {used:?}");
        assert!(
            used.salvaged > 0,
            "no read was answered by the salvage: {used:?}"
        );
    } else {
        assert_eq!(used.one_shot_receives, 0, "{used:?}");
    }
}

#[runtime::test]
async fn a_read_dropped_after_its_bytes_arrived_loses_nothing() {
    read_dropped_after_its_bytes_arrived(false).await;
}

#[runtime::test(multishot_receive = false)]
async fn a_read_dropped_after_its_bytes_arrived_loses_nothing_with_one_shot_reads() {
    read_dropped_after_its_bytes_arrived(true).await;
}

/// The `cancels` counter rises by exactly the number of operations dropped after they started:
/// reads and accepts, each polled once (waiting) and dropped.
#[runtime::test]
async fn cancels_count_every_dropped_operation() {
    let (client, _server) = pair().await;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let before = totals();
    for _ in 0..16 {
        let read = timeout(Duration::ZERO, client.read(vec![0u8; 64])).await;
        assert!(read.is_err(), "nothing was sent: the read waits");
        let accept = timeout(Duration::ZERO, listener.accept()).await;
        assert!(accept.is_err(), "nobody connects: the accept waits");
        runtime::yield_now().await;
    }
    assert_eq!(totals().since(&before).cancels, 32);
}

/// An accept whose connection came before it was dropped: the next accept returns that
/// connection (on io_uring, from the salvage), even with no other accept dropped after it.
#[runtime::test]
async fn an_accept_dropped_after_its_connection_came_loses_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let before = totals();
    // Boxed, so that `drop` below drops the future itself.
    let mut accept = Box::pin(listener.accept());
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(accept.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "nobody connected yet");
    let client = TcpStream::connect(addr).await.expect("connect");
    // One more turn, so that the accept's result is in before the future is dropped.
    runtime::yield_now().await;
    drop(accept);
    let (server, _) = timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the connection of the dropped accept was lost")
        .expect("accept");
    assert_eq!(
        server.peer_addr().expect("peer"),
        client.local_addr().expect("local")
    );
    if on_uring() {
        let used = totals().since(&before);
        assert_eq!(used.salvaged, 1, "{used:?}");
    }
}

/// A read first polled by one task and then awaited by another wakes the second one: the
/// operation keeps the waker of its latest poll (with one-shot reads on io_uring, in the op
/// table; with multishot receive, in the receive queue).
async fn read_moved_to_another_task() {
    let (client, server) = pair().await;
    let client = std::rc::Rc::new(client);
    let reader = client.clone();
    let mut read = Box::pin(async move { reader.read(vec![0u8; 16]).await });
    // Polled once here (this task's waker), then moved to a new task.
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(read.as_mut().poll(cx))).await;
    assert!(first.is_pending(), "nothing was sent yet");
    let moved = runtime::spawn(read);
    // Let the new task poll it once (its own waker), then send.
    runtime::yield_now().await;
    let BufResult(res, _) = server.write_all(b"moved".to_vec()).await;
    res.expect("write");
    let BufResult(res, buf) = timeout(Duration::from_secs(10), moved)
        .await
        .expect("the task that awaits the read was never woken")
        .expect("task");
    assert_eq!(&buf[..res.expect("read")], b"moved");
}

#[runtime::test]
async fn a_read_moved_to_another_task_wakes_that_task() {
    read_moved_to_another_task().await;
}

#[runtime::test(multishot_receive = false)]
async fn a_read_moved_to_another_task_wakes_that_task_with_one_shot_reads() {
    read_moved_to_another_task().await;
}

/// A read handed off from the pool and dropped there is cancelled in the kernel (the reactor
/// sends `ASYNC_CANCEL` for it), not left waiting for data: the socket's next read reaches the
/// kernel once the dropped one is over, which it would not while the dropped read still waited.
#[runtime::test(pool_threads = 1, multishot_receive = false)]
async fn a_read_dropped_on_the_pool_is_cancelled_in_the_kernel() {
    use std::future::poll_fn;
    use std::task::Poll;

    let (peer, stream) = pair().await;
    let stream = std::sync::Arc::new(stream);
    let dropped = stream.clone();
    runtime::pool::spawn(async move {
        let mut read = Box::pin(dropped.read(vec![0u8; 16]));
        poll_fn(|cx| {
            assert!(read.as_mut().poll(cx).is_pending(), "no data was sent");
            Poll::Ready(())
        })
        .await;
    })
    .await
    .expect("pool task");
    if !on_uring() {
        return; // nothing is in flight between epoll's attempts
    }
    let before = totals().one_shot_receives;
    let reader = {
        let stream = stream.clone();
        runtime::spawn(async move { stream.read(vec![0u8; 16]).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while totals().one_shot_receives == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the next read still waits for the dropped one: it was not cancelled"
        );
        runtime::time::sleep(Duration::from_millis(1)).await;
    }
    peer.write_all(b"x".to_vec()).await.0.expect("write");
    let BufResult(n, buf) = reader.await.expect("reader");
    assert_eq!(&buf[..n.expect("read")], b"x");
}
