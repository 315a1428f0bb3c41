//! A spawned task: the future, where its output goes, and how it is woken.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake};

use crate::join::{JoinError, JoinState};
use crate::scheduler::Shared;

/// Identifies a task on its reactor: slab key in the low half, generation in the high half,
/// so that a stale waker of a finished task never polls the task that reused its slot.
pub(crate) type TaskId = u64;

/// The id of the future passed to `block_on`, which is not stored in the task slab.
pub(crate) const MAIN_TASK: TaskId = u64::MAX;

/// A task's waker. Waking queues the task on its reactor exactly once until it is polled again.
pub(crate) struct TaskWaker {
    pub(crate) id: TaskId,
    /// Set when the task is in a run queue, cleared right before it is polled.
    pub(crate) scheduled: AtomicBool,
    /// The reactor the task lives on. A waker kept past its runtime's end only queues into a
    /// queue nobody drains.
    pub(crate) shared: Arc<Shared>,
}

impl TaskWaker {
    pub(crate) fn new(id: TaskId, shared: &Arc<Shared>) -> Arc<Self> {
        Arc::new(TaskWaker {
            id,
            scheduled: AtomicBool::new(false),
            shared: shared.clone(),
        })
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.schedule(self.id);
    }
}

/// The waker a `JoinHandle` wakes on abort, known only once the task is in a reactor's slab
/// (which, for a task spawned from another thread, is later than the handle).
#[derive(Default)]
pub(crate) struct DeferredWaker {
    waker: parking_lot::Mutex<Option<std::task::Waker>>,
    /// An abort arrived before the task was placed: wake it as soon as it is.
    pending: AtomicBool,
}

impl DeferredWaker {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(DeferredWaker::default())
    }

    pub(crate) fn set(&self, waker: std::task::Waker) {
        let mut slot = self.waker.lock();
        if self.pending.swap(false, Ordering::AcqRel) {
            waker.wake_by_ref();
        }
        *slot = Some(waker);
    }
}

impl Wake for DeferredWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let slot = self.waker.lock();
        match &*slot {
            Some(w) => w.wake_by_ref(),
            None => self.pending.store(true, Ordering::Release),
        }
    }
}

/// A spawned future with its output slot, type-erased for the task slab.
pub(crate) trait RawTask {
    /// Polls the future once; `Ready` when the task is over (finished, panicked or aborted).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
    /// Drops the future and reports the task as cancelled.
    fn cancel(self: Pin<&mut Self>);
}

pin_project_lite::pin_project! {
    pub(crate) struct TaskCell<F: Future> {
        #[pin]
        future: Option<F>,
        join: Arc<JoinState<F::Output>>,
    }
}

impl<F: Future> TaskCell<F> {
    pub(crate) fn new(future: F, join: Arc<JoinState<F::Output>>) -> Self {
        TaskCell {
            future: Some(future),
            join,
        }
    }
}

/// Drops the future, catching a panic from its destructor so the reactor survives it too.
fn drop_future<F>(slot: Pin<&mut Option<F>>) -> Option<JoinError> {
    let mut slot = slot;
    catch_unwind(AssertUnwindSafe(|| slot.set(None)))
        .err()
        .map(JoinError::panicked)
}

impl<F: Future> RawTask for TaskCell<F> {
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut this = self.project();
        if this.join.is_aborted() {
            let err = drop_future(this.future).unwrap_or_else(JoinError::cancelled);
            this.join.finish(Err(err));
            return Poll::Ready(());
        }
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                let outcome = match drop_future(this.future) {
                    Some(err) => Err(err),
                    None => Ok(output),
                };
                this.join.finish(outcome);
                Poll::Ready(())
            }
            Err(payload) => {
                drop_future(this.future);
                this.join.finish(Err(JoinError::panicked(payload)));
                Poll::Ready(())
            }
        }
    }

    fn cancel(self: Pin<&mut Self>) {
        let this = self.project();
        let err = drop_future(this.future).unwrap_or_else(JoinError::cancelled);
        this.join.finish(Err(err));
    }
}
