//! Per-reactor timers: `sleep`, `sleep_until`, `timeout`, `interval`.
//!
//! Each reactor keeps its pending deadlines in a [`TimerQueue`]; the earliest one bounds how long
//! the reactor parks. A `Sleep` registers with the reactor it is first polled on and stays
//! there; it may be polled from another thread afterwards (it is `Send`), and its waker is then
//! woken across threads like any other.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::scheduler::{self, Shared};

type Key = (Instant, u64);

/// A reactor's pending deadlines, ordered.
#[derive(Default)]
pub(crate) struct TimerQueue {
    entries: Mutex<BTreeMap<Key, Waker>>,
    next_id: AtomicU64,
}

impl TimerQueue {
    /// Registers `waker` for `deadline`; also says whether it is now the earliest deadline.
    fn insert(&self, deadline: Instant, waker: Waker) -> (Key, bool) {
        let key = (deadline, self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut entries = self.entries.lock();
        entries.insert(key, waker);
        let first = entries.keys().next() == Some(&key);
        (key, first)
    }

    fn set_waker(&self, key: &Key, waker: &Waker) {
        if let Some(w) = self.entries.lock().get_mut(key) {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
    }

    fn remove(&self, key: &Key) {
        self.entries.lock().remove(key);
    }

    /// The earliest pending deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.entries.lock().keys().next().map(|k| k.0)
    }

    /// Forgets every pending timer (at shutdown: their wakers may hold the reactor itself).
    pub(crate) fn clear(&self) {
        let entries = std::mem::take(&mut *self.entries.lock());
        drop(entries);
    }

    /// Wakes every timer whose deadline is at or before `now`, earliest first.
    pub(crate) fn fire(&self, now: Instant) {
        let mut due = Vec::new();
        {
            let mut entries = self.entries.lock();
            while let Some(entry) = entries.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
        }
        for waker in due {
            waker.wake();
        }
    }
}

/// A future that completes at a deadline. Made by [`sleep`] and [`sleep_until`].
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    registered: Option<(Arc<Shared>, Key)>,
}

/// Waits until `duration` has passed.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

/// Waits until `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        registered: None,
    }
}

impl Sleep {
    /// When this sleep completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline; the sleep becomes pending again if the new deadline is later.
    pub fn reset(&mut self, deadline: Instant) {
        self.unregister();
        self.deadline = deadline;
    }

    fn unregister(&mut self) {
        if let Some((shared, key)) = self.registered.take() {
            shared.timers.remove(&key);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    #[track_caller]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if Instant::now() >= this.deadline {
            this.unregister();
            return Poll::Ready(());
        }
        match &this.registered {
            Some((shared, key)) => shared.timers.set_waker(key, cx.waker()),
            None => {
                let shared = scheduler::current_shared()
                    .expect("timers need a runtime: call `sleep` from inside a runtime task");
                let (key, first) = shared.timers.insert(this.deadline, cx.waker().clone());
                if first && !shared.is_current() {
                    // A reactor parked with a later deadline must recompute its timeout.
                    shared.notify();
                }
                this.registered = Some((shared, key));
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// The error of a [`timeout`] whose deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(e: Elapsed) -> Self {
        io::Error::new(io::ErrorKind::TimedOut, e)
    }
}

pin_project_lite::pin_project! {
    /// A future bounded by a deadline. Made by [`timeout`].
    #[must_use = "futures do nothing unless awaited"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

/// Runs `future` for at most `duration`; past it, the future is dropped (cancelling whatever it
/// was doing) and the result is `Err(Elapsed)`.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed(())))
    }
}

/// Ticks at a fixed period. Made by [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    sleep: Sleep,
}

/// Ticks now and then every `period`. A tick that is late does not shift the ones after it;
/// ticks missed while the task was busy fire at once, one per `tick` call.
///
/// # Panics
/// If `period` is zero.
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    assert!(!period.is_zero(), "interval period must be non-zero");
    Interval {
        period,
        sleep: sleep_until(Instant::now()),
    }
}

impl Interval {
    /// Waits for the next tick and returns its scheduled time.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        let at = self.sleep.deadline();
        match Pin::new(&mut self.sleep).poll(cx) {
            Poll::Ready(()) => {
                self.sleep.reset(at + self.period);
                Poll::Ready(at)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// The period between ticks.
    pub fn period(&self) -> Duration {
        self.period
    }
}
