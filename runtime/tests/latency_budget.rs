//! `Builder::latency_budget`, on epoll, on io_uring with the kernel's `min_wait` and on io_uring
//! with the reactor's nap (the path of kernels before 6.12, forced): a request that comes soon
//! after the reactor began to wait is answered once the budget has passed, one that comes after
//! the reactor was idle for longer is answered at once, timers fire on time, and runnable tasks
//! are never held back.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use runtime::net::TcpListener;
use runtime::{Backend, Builder};

const BUDGET: Duration = Duration::from_millis(100);

/// Each way a budget is applied: the backend, and whether io_uring may use `min_wait`.
fn setups() -> Vec<(Backend, bool)> {
    let mut setups = Vec::new();
    for backend in common::backends() {
        setups.push((backend, true));
        if backend == Backend::Uring {
            setups.push((backend, false));
        }
    }
    setups
}

fn builder(backend: Backend, kernel_min_wait: bool) -> Builder {
    Builder::new()
        .backend(backend)
        .reactors(1)
        .pool_threads(1)
        .latency_budget(BUDGET)
        .kernel_min_wait(kernel_min_wait)
}

/// One echo server on the runtime; a client thread measures a request after an idle period
/// (longer than the budget) and one sent right after a reply (the reactor just began to wait).
fn round_trips(backend: Backend, kernel_min_wait: bool) -> (Duration, Duration) {
    builder(backend, kernel_min_wait).block_on(async move {
        common::assert_backend(backend);
        let info = runtime::running_backend().expect("backend");
        assert!(info.reason().contains("latency budget"), "{info}");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).expect("nodelay");
            let mut byte = [0u8; 1];
            // Idle for several budgets: the reactor's wait (which began at the latest one
            // budget after the connection's own events) is well past it.
            std::thread::sleep(BUDGET * 4);
            let start = Instant::now();
            s.write_all(b"a").expect("write");
            s.read_exact(&mut byte).expect("read");
            let after_idle = start.elapsed();
            // At once after the reply: the reactor began to wait a moment ago.
            let start = Instant::now();
            s.write_all(b"b").expect("write");
            s.read_exact(&mut byte).expect("read");
            (after_idle, start.elapsed())
        });
        let (stream, _) = listener.accept().await.expect("accept");
        common::echo(stream).await;
        runtime::pool::spawn_blocking(move || client.join().expect("client"))
            .await
            .expect("pool")
    })
}

#[test]
fn a_request_soon_after_a_wait_began_waits_for_the_budget_and_one_after_idle_does_not() {
    for (backend, kernel_min_wait) in setups() {
        let (after_idle, soon) = round_trips(backend, kernel_min_wait);
        eprintln!("{backend} (min_wait {kernel_min_wait}): after idle {after_idle:?}, soon after {soon:?}");
        assert!(
            soon >= BUDGET * 7 / 10,
            "{backend} (min_wait {kernel_min_wait}): answered in {soon:?}, before the budget"
        );
        assert!(
            after_idle < BUDGET / 2,
            "{backend} (min_wait {kernel_min_wait}): a request after idle took {after_idle:?}"
        );
    }
}

#[test]
fn timers_fire_on_time_and_runnable_tasks_run_at_once() {
    for (backend, kernel_min_wait) in setups() {
        builder(backend, kernel_min_wait).block_on(async move {
            common::assert_backend(backend);
            // A timer shorter than the budget: the wait ends at its deadline.
            let start = Instant::now();
            runtime::time::sleep(Duration::from_millis(10)).await;
            let slept = start.elapsed();
            assert!(
                slept < BUDGET / 2,
                "{backend}: a 10 ms sleep took {slept:?}"
            );
            // Tasks that are runnable never wait for the budget.
            let start = Instant::now();
            let other = runtime::spawn(async {
                for _ in 0..1000 {
                    runtime::yield_now().await;
                }
            });
            for _ in 0..1000 {
                runtime::yield_now().await;
            }
            other.await.expect("other task");
            let took = start.elapsed();
            assert!(took < BUDGET / 2, "{backend}: 2,000 yields took {took:?}");
        });
    }
}

/// A task whose every step awaits a send (the shape of a UDP echo loop: one socket, one task)
/// is not held back by the budget at each step: a send the kernel finished inside its
/// submission woke a task that is runnable, and the budget never holds runnable work back.
/// (Before this held, each send on io_uring waited out the budget: 50 sends took 5 s.)
#[test]
fn a_task_awaiting_one_send_after_another_is_not_held_back_per_send() {
    const SENDS: u32 = 50;
    for (backend, kernel_min_wait) in setups() {
        let took = builder(backend, kernel_min_wait).block_on(async move {
            common::assert_backend(backend);
            let peer = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind peer");
            let to = peer.local_addr().expect("addr");
            let socket = runtime::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let start = Instant::now();
            for i in 0..SENDS {
                let runtime::BufResult(sent, _) = socket.send_to(vec![i as u8; 8], to).await;
                assert_eq!(sent.expect("send"), 8);
            }
            start.elapsed()
        });
        eprintln!("{backend} (min_wait {kernel_min_wait}): {SENDS} sends in {took:?}");
        assert!(
            took < BUDGET * SENDS / 4,
            "{backend} (min_wait {kernel_min_wait}): {SENDS} sends one after another took \
             {took:?}: the budget held back a task its own send had made runnable"
        );
    }
}
