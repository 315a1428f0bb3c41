//! Sockets and operations that outlive their runtime (kept past `block_on`): a new operation,
//! one started on the reactor and polled after it is gone, and one dropped after it is gone
//! each end cleanly, with an error and no bytes made up, instead of waiting for ever; the
//! socket still closes when dropped.
//!
//! On io_uring each refused handoff is checked: the new read's SQE, the read started on the
//! reactor and polled now (migrated), and the one dropped now (abandoned).

mod common;

use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use runtime::net::TcpStream;
use runtime::{Backend, BufResult, Builder};

/// Wakes the test thread.
struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on this thread (no runtime) until it is ready; fails after 10 s.
fn run_outside<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "an operation on an orphaned socket never finished"
        );
        std::thread::park_timeout(left);
    }
}

type ReadOp = Pin<Box<dyn Future<Output = BufResult<usize, Vec<u8>>>>>;

fn outlive_the_runtime(backend: Backend, multishot_receive: bool) {
    let peer = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = peer.local_addr().expect("addr");
    // On the runtime: connect, and start two reads (each polled once, so each is in flight).
    let (stream, mut polled, dropped) = Builder::new()
        .backend(backend)
        .reactors(1)
        .pool_threads(0)
        .multishot_receive(multishot_receive)
        .block_on(async move {
            common::assert_backend(backend);
            let stream = Arc::new(TcpStream::connect(addr).await.expect("connect"));
            let start = |s: Arc<TcpStream>| -> ReadOp {
                Box::pin(async move { s.read(vec![0u8; 64]).await })
            };
            let mut polled = start(stream.clone());
            let mut dropped = start(stream.clone());
            std::future::poll_fn(|cx| {
                assert!(polled.as_mut().poll(cx).is_pending());
                assert!(dropped.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            (stream, polled, dropped)
        });
    let (mut accepted, _) = peer.accept().expect("accept");

    // The runtime is gone. A read it started, polled now, ends with an error.
    let BufResult(res, _) = run_outside(polled.as_mut());
    res.expect_err("a read whose runtime is gone");
    // One dropped now gives nothing back that a later read could take as data.
    drop(dropped);
    // A new read ends with an error too, and makes up no bytes.
    let BufResult(res, _) = run_outside(stream.read(vec![0u8; 64]));
    let err = res.expect_err("a new read on an orphaned socket");
    eprintln!("{backend} (multishot receive {multishot_receive}): {err}");
    // Dropping the socket closes it: the peer reads end of file.
    drop(polled);
    drop(Arc::try_unwrap(stream).expect("the last handle"));
    accepted
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    assert_eq!(accepted.read(&mut byte).expect("EOF, not a timeout"), 0);
}

#[test]
fn sockets_that_outlive_their_runtime_fail_cleanly() {
    for backend in common::backends() {
        // With the multishot receive off, io_uring's reads are operations of the op table, which
        // a read polled (or dropped) after the runtime is gone hands over to a reactor that
        // refuses it.
        for multishot_receive in [true, false] {
            outlive_the_runtime(backend, multishot_receive);
        }
    }
}
