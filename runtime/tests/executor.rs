//! Tasks, wakers, timers and panics on every backend.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

mod common;

use common::thread_state;
use runtime::net::{TcpListener, TcpStream};
use runtime::time::{interval, sleep, timeout};
use runtime::BufResult;

/// A one-shot value handed over from another thread.
#[derive(Default)]
struct Handoff {
    value: Option<u32>,
    waker: Option<Waker>,
}

struct Receive(Arc<Mutex<Handoff>>);

impl Future for Receive {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        let mut h = self.0.lock().unwrap();
        match h.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                h.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[runtime::test]
async fn task_woken_from_a_foreign_thread_while_the_reactor_sleeps() {
    let shared = Arc::new(Mutex::new(Handoff::default()));
    // SAFETY: gettid has no preconditions.
    let reactor_tid = unsafe { libc::gettid() };
    let remote = shared.clone();
    let waker_thread = std::thread::spawn(move || {
        // Wait until the task has parked its waker and the reactor sleeps in its driver, with
        // no timer armed: only our wake can get it out.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let parked = remote.lock().unwrap().waker.is_some();
            if parked && thread_state(reactor_tid) == 'S' {
                break;
            }
            assert!(Instant::now() < deadline, "reactor never went to sleep");
            std::thread::yield_now();
        }
        let mut h = remote.lock().unwrap();
        h.value = Some(42);
        h.waker.take().expect("waker").wake();
    });
    assert_eq!(Receive(shared).await, 42);
    waker_thread.join().expect("waker thread");
}

#[runtime::test]
async fn timers_fire_in_deadline_order() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let tasks: Vec<_> = [30u64, 10, 20, 0, 15]
        .into_iter()
        .map(|ms| {
            let order = order.clone();
            runtime::spawn(async move {
                sleep(Duration::from_millis(ms)).await;
                order.borrow_mut().push(ms);
            })
        })
        .collect();
    let start = Instant::now();
    for t in tasks {
        t.await.expect("timer task");
    }
    assert!(start.elapsed() >= Duration::from_millis(30));
    assert_eq!(*order.borrow(), vec![0, 10, 15, 20, 30]);
}

#[runtime::test]
async fn interval_ticks_at_its_period() {
    let mut ticks = interval(Duration::from_millis(5));
    let first = ticks.tick().await;
    let mut last = first;
    for _ in 0..4 {
        let at = ticks.tick().await;
        assert_eq!(
            at - last,
            Duration::from_millis(5),
            "ticks keep their schedule"
        );
        assert!(Instant::now() >= at);
        last = at;
    }
    assert_eq!(last - first, Duration::from_millis(20));
}

/// Sets its flag when dropped.
struct DropFlag(Rc<RefCell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        *self.0.borrow_mut() = true;
    }
}

#[runtime::test]
async fn timeout_cancels_the_inner_future() {
    let dropped = Rc::new(RefCell::new(false));
    let flag = DropFlag(dropped.clone());
    let res = timeout(Duration::from_millis(10), async move {
        let _flag = flag;
        sleep(Duration::from_secs(3600)).await;
    })
    .await;
    assert!(res.is_err(), "the hour-long sleep must time out");
    assert!(*dropped.borrow(), "the timed-out future was dropped");
    let ok = timeout(Duration::from_secs(10), async { 7 }).await;
    assert_eq!(ok, Ok(7));
}

#[runtime::test]
async fn timeout_cancels_a_pending_read() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    let res = timeout(Duration::from_millis(20), client.read(vec![0u8; 64])).await;
    let err: std::io::Error = res.expect_err("nothing was sent").into();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    // The connection still works after the cancelled read.
    let BufResult(res, _) = server.write_all(b"after".to_vec()).await;
    res.expect("write");
    let BufResult(res, buf) = client.read(vec![0u8; 64]).await;
    assert_eq!(&buf[..res.expect("read")], b"after");
}

#[runtime::test]
async fn a_panicking_task_leaves_the_reactor_serving() {
    let handle = runtime::spawn(async {
        runtime::yield_now().await;
        panic!("deliberate test panic");
    });
    let err = handle.await.expect_err("the task panicked");
    assert!(err.is_panic());
    assert_eq!(err.to_string(), "task panicked: deliberate test panic");

    // The reactor still runs tasks and I/O.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = runtime::spawn(async move {
        let (s, _) = listener.accept().await.expect("accept");
        let BufResult(res, buf) = s.read(vec![0u8; 8]).await;
        let n = res.expect("read");
        let BufResult(res, _) = s.write_all(buf[..n].to_vec()).await;
        res.expect("write");
    });
    let client = TcpStream::connect(addr).await.expect("connect");
    let BufResult(res, _) = client.write_all(b"still".to_vec()).await;
    res.expect("write");
    let BufResult(res, buf) = client.read(vec![0u8; 8]).await;
    assert_eq!(&buf[..res.expect("read")], b"still");
    server.await.expect("server task");
}

/// Awaits an aborted task's handle (at most 10 s): it must report the task cancelled.
async fn assert_cancelled<T: std::fmt::Debug>(handle: runtime::JoinHandle<T>) {
    let err = timeout(Duration::from_secs(10), handle)
        .await
        .expect("abort seen")
        .expect_err("aborted");
    assert!(err.is_cancelled());
}

#[runtime::test]
async fn abort_cancels_a_task_and_drops_its_future() {
    let dropped = Rc::new(RefCell::new(false));
    let flag = DropFlag(dropped.clone());
    let handle = runtime::spawn(async move {
        let _flag = flag;
        sleep(Duration::from_secs(3600)).await;
    });
    runtime::yield_now().await;
    handle.abort();
    assert_cancelled(handle).await;
    assert!(*dropped.borrow());
}

/// An abort that finds its task already queued (spawned, or woken, and not yet polled) queues
/// nothing more: the poll it is queued for must still see the abort, and never run the body.
#[runtime::test]
async fn abort_of_a_queued_task_is_seen_at_its_next_poll() {
    let ran = Rc::new(RefCell::new(0));
    let spawned = runtime::spawn({
        let ran = ran.clone();
        async move { *ran.borrow_mut() += 1 }
    });
    spawned.abort();
    assert_cancelled(spawned).await;

    // Queued again by its own wake, and aborted before the poll that wake queued.
    let woken = runtime::spawn({
        let ran = ran.clone();
        async move {
            runtime::yield_now().await;
            *ran.borrow_mut() += 1;
        }
    });
    runtime::yield_now().await;
    woken.abort();
    assert_cancelled(woken).await;
    assert_eq!(*ran.borrow(), 0, "an aborted task ran on");
}

/// A finished task's waker, woken after another task took the finished one's place in the
/// reactor's registry, must neither poll nor drop the task now in that place.
#[runtime::test]
async fn a_stale_waker_leaves_the_task_in_its_place_alone() {
    let stale = runtime::spawn(std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())))
        .await
        .expect("finished");
    let dropped = Rc::new(RefCell::new(false));
    let polls = Rc::new(RefCell::new(0));
    let second = runtime::spawn({
        let flag = DropFlag(dropped.clone());
        let polls = polls.clone();
        std::future::poll_fn(move |_| {
            let _ = &flag;
            *polls.borrow_mut() += 1;
            Poll::<()>::Pending
        })
    });
    runtime::yield_now().await;
    assert_eq!(*polls.borrow(), 1);
    stale.wake_by_ref();
    runtime::yield_now().await;
    // Woken again from another thread; the task that thread spawns next runs after the wake
    // is drained, and wakes this one behind it.
    let reactor = runtime::current_reactor().expect("a reactor");
    let behind = std::thread::spawn(move || {
        stale.wake();
        reactor.spawn(async {})
    });
    behind.join().expect("woken").await.expect("ran");
    runtime::yield_now().await;
    assert!(
        !*dropped.borrow(),
        "a stale wake dropped the task in its place"
    );
    assert!(!second.is_finished());
    assert_eq!(
        *polls.borrow(),
        1,
        "a stale wake polled the task in its place"
    );
}

/// A task handed to a reactor that has ended is dropped, and its handle says so instead of
/// waiting for ever.
#[test]
fn spawn_on_an_ended_reactor_reports_cancellation() {
    let reactor =
        runtime::Builder::new().block_on(async { runtime::current_reactor().expect("a reactor") });
    let handle = reactor.spawn(async { 1 });
    let outcome =
        runtime::Builder::new().block_on(async { timeout(Duration::from_secs(10), handle).await });
    let err = outcome
        .expect("the handle answered")
        .expect_err("never ran");
    assert!(err.is_cancelled());
}

#[runtime::test]
async fn join_handle_yields_the_output_and_tasks_run_concurrently() {
    use std::cell::RefCell;
    use std::rc::Rc;
    // A ping-pong: each task appends its turn only after seeing the other's last turn, so the
    // two finish only if they interleave (run one after the other, the first would wait for
    // ever and the timeout below fails the test).
    let log = Rc::new(RefCell::new(Vec::new()));
    let player = |me: u32, log: Rc<RefCell<Vec<u32>>>| async move {
        for turn in 0..10u32 {
            while log.borrow().len() as u32 != 2 * turn + me {
                runtime::yield_now().await;
            }
            log.borrow_mut().push(me);
        }
        me + 1
    };
    let a = runtime::spawn(player(0, log.clone()));
    let b = runtime::spawn(player(1, log.clone()));
    let both = async { a.await.expect("a") + b.await.expect("b") };
    let sum = runtime::time::timeout(Duration::from_secs(10), both)
        .await
        .expect("the tasks did not interleave");
    assert_eq!(sum, 3);
    let expected: Vec<u32> = (0..20).map(|i| i % 2).collect();
    assert_eq!(*log.borrow(), expected);
}

#[test]
fn spawn_outside_a_runtime_panics_with_guidance() {
    let err = std::panic::catch_unwind(|| drop(runtime::spawn(async {}))).expect_err("no runtime");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains("outside a runtime"), "{msg}");
}
