//! A task whose socket always has data gives its reactor back to the other tasks (the
//! cooperative budget): on epoll its reads would otherwise never return `Pending`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use runtime::net::TcpListener;
use runtime::BufResult;

#[runtime::test(timeout_secs = 60)]
async fn a_socket_that_always_has_data_does_not_starve_other_tasks() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stop = Arc::new(AtomicBool::new(false));
    // A peer that writes far faster than one-byte reads can drain, until told to stop.
    let writer = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut peer = std::net::TcpStream::connect(addr).expect("connect");
            let chunk = vec![7u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                if peer.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
    });
    let (stream, _) = listener.accept().await.expect("accept");
    let bytes_read = Arc::new(AtomicU64::new(0));
    let reader = runtime::spawn({
        let (stop, bytes_read) = (stop.clone(), bytes_read.clone());
        async move {
            let mut buf = vec![0u8; 1];
            while !stop.load(Ordering::Relaxed) {
                let BufResult(res, b) = stream.read(buf).await;
                assert_eq!(res.expect("read"), 1);
                bytes_read.fetch_add(1, Ordering::Relaxed);
                buf = b;
            }
        }
    });
    // Runs while the reader streams: without the budget the reader never yields on epoll, and
    // neither this task nor the timer below ever runs again.
    let other = runtime::spawn({
        let bytes_read = bytes_read.clone();
        async move {
            while bytes_read.load(Ordering::Relaxed) < 100_000 {
                runtime::yield_now().await;
            }
        }
    });
    // A timer on the same reactor fires at least five times while the stream goes on. The
    // peer is a thread that may wait for a CPU longer than five ticks (the reader then waits
    // for its bytes), so the ticks go on, up to 500, until the reader has read some.
    let ticker = runtime::spawn({
        let bytes_read = bytes_read.clone();
        async move {
            let first = bytes_read.load(Ordering::Relaxed);
            for tick in 1..=500 {
                runtime::time::sleep(Duration::from_millis(2)).await;
                if tick >= 5 && bytes_read.load(Ordering::Relaxed) > first {
                    break;
                }
            }
            (first, bytes_read.load(Ordering::Relaxed))
        }
    });
    runtime::time::timeout(Duration::from_secs(10), other)
        .await
        .expect("the other task ran while the reader had data")
        .expect("other task");
    let (first, at_last_tick) = runtime::time::timeout(Duration::from_secs(10), ticker)
        .await
        .expect("the timer fired while the reader had data")
        .expect("ticker");
    assert!(
        at_last_tick > first,
        "the reader made progress while the timer ticked"
    );
    // And the stream went on after the timer's last tick: it fired mid-stream.
    while bytes_read.load(Ordering::Relaxed) <= at_last_tick {
        runtime::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    reader.await.expect("reader");
    // The reader's socket is closed now, which ends the writer's blocked send; join it off the
    // reactor, which must keep running to submit that close.
    runtime::pool::spawn_blocking(move || writer.join())
        .await
        .expect("pool")
        .expect("writer");
}
