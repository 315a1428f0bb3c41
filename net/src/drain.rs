//! What a server's graceful shutdown waits on: flags set once (draining, cancel) and a count
//! of live tasks, each awaitable from any thread.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// Wakers waiting for a condition that other threads make true.
#[derive(Default)]
struct Waiters(Mutex<Vec<Waker>>);

impl Waiters {
    /// `Ready` once `done()` holds; otherwise registers `cx`'s waker (and looks once more, so a
    /// change made before the waker was in the list is not missed).
    fn poll_until(&self, cx: &mut Context<'_>, done: impl Fn() -> bool) -> Poll<()> {
        if done() {
            return Poll::Ready(());
        }
        {
            let mut waiters = self.0.lock();
            if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                waiters.push(cx.waker().clone());
            }
        }
        if done() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn wake_all(&self) {
        let waiters = std::mem::take(&mut *self.0.lock());
        for w in waiters {
            w.wake();
        }
    }
}

/// A flag that is set once and awaited by any number of tasks on any threads.
#[derive(Default)]
pub(crate) struct Flag {
    set: AtomicBool,
    waiters: Waiters,
}

impl Flag {
    pub(crate) fn set(&self) {
        self.set.store(true, Ordering::SeqCst);
        self.waiters.wake_all();
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    pub(crate) async fn wait(&self) {
        poll_fn(|cx| self.waiters.poll_until(cx, || self.is_set())).await
    }
}

/// A count of live tasks, awaitable until it reaches zero.
#[derive(Default)]
pub(crate) struct Live {
    count: AtomicUsize,
    waiters: Waiters,
}

impl Live {
    /// Counts one task until the returned guard drops.
    pub(crate) fn enter(self: &Arc<Self>) -> LiveGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        LiveGuard(self.clone())
    }

    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub(crate) async fn until_none(&self) {
        poll_fn(|cx| self.waiters.poll_until(cx, || self.count() == 0)).await
    }
}

/// One live task; dropping it ends the count.
pub(crate) struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.waiters.wake_all();
        }
    }
}

/// Runs `work` until it finishes or `stop` does, whichever is first; `None` if `stop` won.
pub(crate) async fn until<T>(work: impl Future<Output = T>, stop: impl Future) -> Option<T> {
    let mut work = pin!(work);
    let mut stop = pin!(stop);
    poll_fn(|cx| {
        if let Poll::Ready(v) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        stop.as_mut().poll(cx).map(|_| None)
    })
    .await
}
