//! Shutting a runtime down with operations in flight on every reactor stops every thread and
//! closes every fd. (One test in its own binary: it counts the process's fds and threads.)

use std::future::Future;
use std::time::{Duration, Instant};

use runtime::net::{TcpListener, TcpStream};
use runtime::{Backend, BufResult, Builder};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("fds").count()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").expect("tasks").count()
}

/// On every reactor: a listener with an accept in flight and a connected pair with a read in
/// flight; then the main future returns.
async fn leave_operations_in_flight() {
    for reactor in 0..runtime::reactors().len() {
        runtime::spawn_on(reactor, async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let client = TcpStream::connect(addr).await.expect("connect");
            let (server, _) = listener.accept().await.expect("accept");
            runtime::spawn(async move {
                let _accepting = listener.accept().await;
            });
            runtime::spawn(async move {
                let BufResult(_, _) = client.read(vec![0u8; 1024]).await;
                drop(server);
            });
        })
        .await
        .expect("setup on reactor");
    }
    // A pool task parked on reactor 0's timer (registered before shutdown starts), whose handle
    // is dropped: it must not outlive the runtime (it owns its own output slot).
    let (registered, wait) = std::sync::mpsc::channel();
    drop(runtime::pool::spawn(async move {
        let mut sleep = std::pin::pin!(runtime::time::sleep(Duration::from_secs(3600)));
        std::future::poll_fn(|cx| {
            let poll = sleep.as_mut().poll(cx);
            let _ = registered.send(());
            poll
        })
        .await
    }));
    runtime::pool::spawn_blocking(move || wait.recv().expect("the pool task ran"))
        .await
        .expect("pool");
}

#[test]
fn shutdown_with_operations_in_flight_closes_everything() {
    let backends: &[Backend] = &[
        #[cfg(feature = "uring")]
        Backend::Uring,
        #[cfg(feature = "epoll")]
        Backend::Epoll,
    ];
    for &backend in backends {
        let rt = match Builder::new()
            .backend(backend)
            .reactors(3)
            .pool_threads(2)
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("skipped {backend}: {e}");
                continue;
            }
        };
        assert_eq!(
            Backend::from(rt.backend_kind()),
            backend,
            "this test asked for {backend} (is RUNTIME_BACKEND set?)"
        );
        let (fds, tasks) = (open_fds(), threads());
        let start = Instant::now();
        rt.block_on(leave_operations_in_flight()).expect("runtime");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{backend}: shutdown took too long"
        );
        // A joined thread may still be listed for a few milliseconds while the kernel finishes
        // its exit (its tid is cleared, which ends the join, before it is released): wait for
        // the count, within a bound a thread left running would not meet.
        let deadline = Instant::now() + Duration::from_secs(5);
        while threads() != tasks && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            threads(),
            tasks,
            "{backend}: every reactor and pool thread is joined"
        );
        assert_eq!(
            open_fds(),
            fds,
            "{backend}: every socket, ring, epoll and eventfd is closed"
        );
    }
}
