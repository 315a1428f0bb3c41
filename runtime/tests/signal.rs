//! Signals as futures: several waiters at once, on a reactor, on another reactor and on the
//! pool, each woken by one delivery; a listener sees only deliveries after its creation.

use std::time::Duration;

use runtime::signal::{signal, SignalKind};
use runtime::time::timeout;

fn raise(kind: SignalKind) {
    // SAFETY: sending a signal to this process, whose handler for it is installed.
    let res = unsafe { libc::kill(libc::getpid(), kind.as_raw()) };
    assert_eq!(res, 0, "kill: {}", std::io::Error::last_os_error());
}

/// Every waiter, wherever it waits, hears one delivery.
#[runtime::test(reactors = 2, pool_threads = 1)]
async fn one_delivery_wakes_every_waiter_on_every_thread() {
    let kind = SignalKind::user_defined1();
    let mut here = signal(kind).expect("signal");
    let mut other_reactor = signal(kind).expect("signal");
    let mut on_pool = signal(kind).expect("signal");
    let other_reactor = runtime::spawn_on(1, async move { other_reactor.recv().await });
    let on_pool = runtime::pool::spawn(async move { on_pool.recv().await });
    raise(kind);
    let bound = Duration::from_secs(10);
    assert_eq!(timeout(bound, here.recv()).await, Ok(Some(())));
    assert_eq!(
        timeout(bound, other_reactor).await.map(Result::ok),
        Ok(Some(Some(())))
    );
    assert_eq!(
        timeout(bound, on_pool).await.map(Result::ok),
        Ok(Some(Some(())))
    );
}

/// A listener made after a delivery does not see it; it sees the next one.
#[runtime::test]
async fn a_listener_sees_only_later_deliveries() {
    // One signal per backend: the two variants of this test run at the same time.
    let kind = match runtime::running_backend().expect("in a runtime").kind() {
        runtime::BackendKind::Uring => SignalKind::user_defined2(),
        runtime::BackendKind::Epoll => SignalKind::window_change(),
    };
    let mut early = signal(kind).expect("signal");
    raise(kind);
    timeout(Duration::from_secs(10), early.recv())
        .await
        .expect("the early listener hears the first delivery");
    let mut late = signal(kind).expect("signal");
    let waker = std::task::Waker::noop();
    assert_eq!(
        late.poll_recv(&mut std::task::Context::from_waker(waker)),
        std::task::Poll::Pending,
        "a listener heard a delivery made before it existed"
    );
    raise(kind);
    timeout(Duration::from_secs(10), late.recv())
        .await
        .expect("the late listener hears the second delivery");
}

#[runtime::test]
async fn signals_that_cannot_be_caught_are_refused() {
    for raw in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, 99] {
        let err = signal(SignalKind::from_raw(raw)).expect_err("refused");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "signal {raw}");
    }
}
