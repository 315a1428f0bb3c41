//! What a server's graceful shutdown waits on: flags set once (draining, cancel) and a count
//! of live tasks, each awaitable from any thread.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use runtime_core::waiters::{WaitSlot, Waiters};

/// A future that is ready once `done()` holds, woken by its [`Waiters`].
struct WaitUntil<'a, F: Fn() -> bool> {
    waiters: &'a Waiters,
    done: F,
    slot: WaitSlot,
}

impl<F: Fn() -> bool + Unpin> Future for WaitUntil<'_, F> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.waiters.poll_until(&mut this.slot, cx, &this.done)
    }
}

impl<F: Fn() -> bool> Drop for WaitUntil<'_, F> {
    fn drop(&mut self) {
        self.waiters.leave(&mut self.slot);
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
        WaitUntil {
            waiters: &self.waiters,
            done: || self.is_set(),
            slot: WaitSlot::default(),
        }
        .await
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
        WaitUntil {
            waiters: &self.waiters,
            done: || self.count() == 0,
            slot: WaitSlot::default(),
        }
        .await
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
