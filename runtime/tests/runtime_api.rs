//! The runtime's API around the sockets: timers on every thread, aborts of every kind of task,
//! the backend seen from every thread, reactor pinning, a runtime without a pool, and I/O on a
//! reactor other than the first.

use std::time::{Duration, Instant};

mod common;

use common::pair;
use runtime::time::{interval, sleep, sleep_until, timeout};
use runtime::{BufResult, Builder};

/// `sleep_until` waits for its deadline; `Sleep::reset` moves it (later: pending again;
/// earlier: fires sooner).
#[runtime::test]
async fn sleep_until_and_reset() {
    let start = Instant::now();
    sleep_until(start + Duration::from_millis(20)).await;
    assert!(start.elapsed() >= Duration::from_millis(20));

    let mut s = Box::pin(sleep(Duration::from_secs(3600)));
    let deadline = Instant::now() + Duration::from_millis(10);
    s.as_mut().reset(deadline);
    assert_eq!(s.deadline(), deadline);
    timeout(Duration::from_secs(10), s.as_mut())
        .await
        .expect("the reset moved the deadline earlier");
    assert!(Instant::now() >= deadline);

    let mut s = Box::pin(sleep(Duration::ZERO));
    s.as_mut().reset(Instant::now() + Duration::from_secs(3600));
    assert!(
        timeout(Duration::from_millis(20), s.as_mut())
            .await
            .is_err(),
        "the reset made the sleep pending again"
    );
}

/// Ticks missed while the task was busy fire at once, one per `tick`, keeping their schedule.
#[runtime::test]
async fn interval_catches_up_missed_ticks() {
    let period = Duration::from_millis(10);
    let mut ticks = interval(period);
    let first = ticks.tick().await;
    // Busy past three periods without yielding.
    std::thread::sleep(period * 3 + Duration::from_millis(5));
    let before = Instant::now();
    let mut scheduled = Vec::new();
    for _ in 0..3 {
        scheduled.push(ticks.tick().await);
    }
    assert!(
        before.elapsed() < period,
        "the missed ticks came at once, not one per period"
    );
    for (i, at) in scheduled.iter().enumerate() {
        assert_eq!(
            *at,
            first + period * (i as u32 + 1),
            "tick {i} kept its schedule"
        );
    }
}

/// Timers work on every thread: reactor 1, and a pool thread (which borrows reactor 0's).
#[runtime::test(reactors = 2, pool_threads = 1)]
async fn timers_on_another_reactor_and_on_the_pool() {
    let wait = Duration::from_millis(15);
    let on_reactor_1 = runtime::spawn_on(1, async move {
        let start = Instant::now();
        sleep(wait).await;
        start.elapsed()
    });
    let on_pool = runtime::pool::spawn(async move {
        let start = Instant::now();
        sleep(wait).await;
        start.elapsed()
    });
    let bound = Duration::from_secs(10);
    let r1 = timeout(bound, on_reactor_1)
        .await
        .expect("reactor 1 timer")
        .expect("task");
    let p = timeout(bound, on_pool)
        .await
        .expect("pool timer")
        .expect("task");
    assert!(r1 >= wait && p >= wait, "{r1:?} {p:?}");
}

/// Aborting a task spawned on another reactor, on the pool, a blocking job still queued behind
/// a busy pool thread, and a task that already finished.
#[runtime::test(reactors = 2, pool_threads = 1)]
async fn abort_every_kind_of_task() {
    let bound = Duration::from_secs(10);
    let on_reactor_1 = runtime::spawn_on(1, std::future::pending::<()>());
    on_reactor_1.abort();
    let err = timeout(bound, on_reactor_1)
        .await
        .expect("abort seen")
        .expect_err("aborted");
    assert!(err.is_cancelled());

    let on_pool = runtime::pool::spawn(std::future::pending::<()>());
    on_pool.abort();
    let err = timeout(bound, on_pool)
        .await
        .expect("abort seen")
        .expect_err("aborted");
    assert!(err.is_cancelled());

    // The only pool thread is busy until told; a blocking job queued behind it is aborted
    // before it runs, and never runs.
    let (release, busy) = std::sync::mpsc::channel::<()>();
    let blocker = runtime::pool::spawn_blocking(move || busy.recv().is_ok());
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let queued = runtime::pool::spawn_blocking({
        let ran = ran.clone();
        move || ran.store(true, std::sync::atomic::Ordering::SeqCst)
    });
    queued.abort();
    release.send(()).expect("release the pool thread");
    assert!(timeout(bound, blocker)
        .await
        .expect("blocker")
        .expect("blocker ran"));
    let err = timeout(bound, queued)
        .await
        .expect("abort seen")
        .expect_err("aborted");
    assert!(err.is_cancelled());
    assert!(
        !ran.load(std::sync::atomic::Ordering::SeqCst),
        "an aborted job ran"
    );

    // Abort after completion changes nothing: the output is still there.
    let done = runtime::spawn(async { 7 });
    while !done.is_finished() {
        runtime::yield_now().await;
    }
    done.abort();
    assert_eq!(done.await.expect("finished before the abort"), 7);
}

/// `running_backend()` answers the same on reactor 1 and on a pool thread as on reactor 0.
#[runtime::test(reactors = 2, pool_threads = 1)]
async fn the_backend_is_known_on_every_thread() {
    let here = runtime::running_backend().expect("reactor 0").kind();
    let on_reactor_1 = runtime::spawn_on(1, async { runtime::running_backend().map(|b| b.kind()) })
        .await
        .expect("reactor 1");
    let on_pool = runtime::pool::spawn(async { runtime::running_backend().map(|b| b.kind()) })
        .await
        .expect("pool");
    assert_eq!(on_reactor_1, Some(here));
    assert_eq!(on_pool, Some(here));
}

/// I/O on reactor 1: a pair made there echoes there, and a socket made on reactor 0 is read
/// from reactor 1.
#[runtime::test(reactors = 2, pool_threads = 1)]
async fn io_on_a_second_reactor() {
    let echoed = runtime::spawn_on(1, async {
        let (a, b) = pair().await;
        let BufResult(res, _) = a.write_all(b"on reactor 1".to_vec()).await;
        res.expect("write");
        let BufResult(res, buf) = b.read(vec![0u8; 32]).await;
        buf[..res.expect("read")].to_vec()
    })
    .await
    .expect("reactor 1");
    assert_eq!(echoed, b"on reactor 1");

    let (a, b) = pair().await;
    let reader = runtime::spawn_on(1, async move {
        let BufResult(res, buf) = b.read(vec![0u8; 32]).await;
        buf[..res.expect("read")].to_vec()
    });
    let BufResult(res, _) = a.write_all(b"from reactor 0".to_vec()).await;
    res.expect("write");
    assert_eq!(reader.await.expect("reader"), b"from reactor 0");
}

/// The CPUs the calling thread may run on.
fn affinity() -> Vec<usize> {
    // SAFETY: all-zero is a valid cpu_set_t, filled in by the call.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid out-pointer of the size given.
    let res = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(res, 0, "sched_getaffinity");
    // SAFETY: `set` was filled in above.
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// `pin_reactors(true)` pins reactor i to CPU i % (online CPUs), and gives the calling thread
/// (reactor 0) its affinity back at the end.
#[test]
fn pin_reactors_pins_each_reactor_to_its_cpu() {
    let cpus = affinity();
    if cpus.len() < 2 {
        return eprintln!("skipped: this process may run on {cpus:?} only");
    }
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    for backend in common::backends() {
        let pinned = Builder::new()
            .backend(backend)
            .reactors(2)
            .pool_threads(1)
            .pin_reactors(true)
            .block_on(async move {
                common::assert_backend(backend);
                let first = affinity();
                let second = runtime::spawn_on(1, async { affinity() })
                    .await
                    .expect("r1");
                (first, second)
            });
        assert_eq!(pinned.0, vec![0 % n], "{backend}: reactor 0");
        assert_eq!(pinned.1, vec![1 % n], "{backend}: reactor 1");
        // Reactor 0 ran on this thread: its affinity is back.
        assert_eq!(
            affinity(),
            cpus,
            "{backend}: the caller's affinity was not given back"
        );
    }
}

/// Without pool threads, pool work is refused at once (a cancelled handle), never queued for
/// ever.
#[test]
fn a_runtime_without_a_pool_refuses_pool_work_at_once() {
    for backend in common::backends() {
        Builder::new()
            .backend(backend)
            .reactors(1)
            .pool_threads(0)
            .block_on(async move {
                common::assert_backend(backend);
                let bound = Duration::from_secs(10);
                let err = timeout(bound, runtime::pool::spawn(async { 1 }))
                    .await
                    .expect("answered at once")
                    .expect_err("no pool");
                assert!(err.is_cancelled());
                let err = timeout(bound, runtime::pool::spawn_blocking(|| 1))
                    .await
                    .expect("answered at once")
                    .expect_err("no pool");
                assert!(err.is_cancelled());
                // The reactor itself works as ever.
                let (a, b) = pair().await;
                let BufResult(res, _) = a.write_all(b"x".to_vec()).await;
                res.expect("write");
                let BufResult(res, _) = b.read(vec![0u8; 1]).await;
                assert_eq!(res.expect("read"), 1);
            });
    }
}
