//! A spawned task: the future, where its output goes, and how it is woken.

use std::cell::UnsafeCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};

use crate::join::{Abortable, JoinError, JoinHandle, JoinState};
use crate::scheduler::Shared;
use crate::task_state::TaskState;

/// A task of a reactor: its scheduling state and its future in one allocation, so that waking
/// it and polling it touch the same memory, and the run queue holds the task itself rather than
/// a key to look up. The allocation is also the task's `Waker`.
///
/// The future is touched only on the reactor thread (`shared`'s), which is what makes the type
/// `Send` and `Sync` whatever the future is; see the impls.
#[repr(C)]
pub(crate) struct Task<F: Future> {
    /// Whether the task is queued (or not yet placed), and whether its handle aborted it:
    /// beside each other and the output slot, so that a poll reads them from the line the wake
    /// brought in, not from the handle's state.
    state: TaskState,
    /// The task's key in its reactor's registry, written when it is placed.
    key: AtomicUsize,
    /// The reactor the task lives on. A waker kept past its runtime's end only queues into a
    /// queue that is closed.
    shared: Arc<Shared>,
    cell: UnsafeCell<TaskCell<F>>,
}

// SAFETY: of a `Task`, other threads touch only `state`, `key` (atomics) and `shared`
// (`Send + Sync`): waking it queues the `Arc` on its reactor. `cell` is touched only on the
// reactor thread: `run` and `cancel` are called only by the reactor that `shared` names, on
// the tasks of its own run queue and registry. A future that is not `Send` is dropped there
// too: `Local::spawn` places such a task in the registry before anything else can reach it,
// and the registry lets go of a task only after `run` or `cancel` dropped its future (and its
// output slot, whose output may not be `Send` either). What another thread may drop is then a
// spent cell, or a task that never reached its reactor, which `ReactorHandle::spawn` creates
// only from a `Send` future.
unsafe impl<F: Future> Send for Task<F> {}
// SAFETY: as for `Send`: shared references reach `cell` only on the reactor thread.
unsafe impl<F: Future> Sync for Task<F> {}

impl<F: Future + 'static> Task<F> {
    /// A task for `shared`'s reactor and the handle to its output. It counts as queued until
    /// its reactor places it, so that an early wake (an abort) does not queue it before then.
    pub(crate) fn new(future: F, shared: &Arc<Shared>) -> (Arc<Self>, JoinHandle<F::Output>) {
        let mut join = None;
        let task = Arc::new_cyclic(|me: &Weak<Self>| {
            let state = JoinState::new(me.clone());
            join = Some(JoinHandle::new(state.clone()));
            Task {
                state: TaskState::queued(),
                key: AtomicUsize::new(usize::MAX),
                shared: shared.clone(),
                cell: UnsafeCell::new(TaskCell::new(future, state)),
            }
        });
        (task, join.expect("`new_cyclic` ran the closure"))
    }
}

/// A reactor's view of a task, whatever its future.
pub(crate) trait Runnable: Send + Sync {
    /// Polls the task once; its key in the registry if it finished in this poll. Reactor
    /// thread only.
    fn run(self: Arc<Self>) -> Option<usize>;
    /// Drops the future and reports the task as cancelled. Reactor thread only.
    fn cancel(&self);
    /// The reactor the task lives on.
    fn reactor(&self) -> &Arc<Shared>;
    /// Records the task's key in its reactor's registry.
    fn set_key(&self, key: usize);
}

impl<F: Future + 'static> Runnable for Task<F> {
    fn run(self: Arc<Self>) -> Option<usize> {
        let aborted = self.state.begin_poll();
        let this: *const Self = Arc::as_ptr(&self);
        // The queue's reference becomes the poll's waker, without touching the count.
        let waker = Waker::from(self);
        // SAFETY: `waker` owns a reference to the task until the end of this function, so
        // the task outlives `task`.
        let task = unsafe { &*this };
        // SAFETY: `cell` is touched only on the reactor thread (see `Send`), and this is the
        // only reference to it: the reactor polls one task at a time and does not re-enter a
        // poll.
        let cell = unsafe { &mut *task.cell.get() };
        if cell.is_over() {
            return None;
        }
        // SAFETY: the cell lives in the task's allocation, which never moves.
        let cell = unsafe { Pin::new_unchecked(cell) };
        match cell.poll(aborted, &mut Context::from_waker(&waker)) {
            Poll::Ready(()) => Some(task.key.load(Ordering::Relaxed)),
            Poll::Pending => None,
        }
    }

    fn cancel(&self) {
        // SAFETY: as in `run`: reactor thread, no other reference to the cell.
        let cell = unsafe { Pin::new_unchecked(&mut *self.cell.get()) };
        cell.cancel();
    }

    fn reactor(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn set_key(&self, key: usize) {
        self.key.store(key, Ordering::Relaxed);
    }
}

impl<F: Future + 'static> Wake for Task<F> {
    fn wake(self: Arc<Self>) {
        if self.state.wake() {
            crate::scheduler::schedule(self);
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.state.wake() {
            crate::scheduler::schedule(self.clone());
        }
    }
}

impl<F: Future + 'static> Abortable for Task<F> {
    fn wake_to_abort(self: Arc<Self>) {
        if self.state.abort() {
            crate::scheduler::schedule(self);
        }
    }
}

impl<F: Future> Drop for Task<F> {
    fn drop(&mut self) {
        // A task dropped before its reactor placed it (the reactor had shut down): its handle
        // reports cancellation. Placed tasks get here with their cell already spent, which
        // `cancel` leaves alone.
        // SAFETY: the cell is about to be dropped in place and is not moved before that.
        unsafe { Pin::new_unchecked(self.cell.get_mut()) }.cancel();
    }
}

/// A spawned future with its output slot, type-erased for the worker pool.
pub(crate) trait RawTask {
    /// Polls the future once, or cancels it if `aborted`; `Ready` when the task is over
    /// (finished, panicked or aborted).
    fn poll(self: Pin<&mut Self>, aborted: bool, cx: &mut Context<'_>) -> Poll<()>;
    /// Drops the future and reports the task as cancelled.
    fn cancel(self: Pin<&mut Self>);
}

pin_project_lite::pin_project! {
    /// The future and its output slot; both are dropped when the task is over, by whoever
    /// runs it. The slot comes first, where a `Task`'s poll finds it beside the task's own
    /// state.
    #[repr(C)]
    pub(crate) struct TaskCell<F: Future> {
        join: Option<Arc<JoinState<F::Output>>>,
        #[pin]
        future: Option<F>,
    }
}

impl<F: Future> TaskCell<F> {
    pub(crate) fn new(future: F, join: Arc<JoinState<F::Output>>) -> Self {
        TaskCell {
            join: Some(join),
            future: Some(future),
        }
    }

    /// Whether the task finished, panicked or was cancelled.
    pub(crate) fn is_over(&self) -> bool {
        self.join.is_none()
    }
}

/// Hands the task's outcome to its handle, letting go of the output slot.
fn finish<T>(join: &mut Option<Arc<JoinState<T>>>, outcome: Result<T, JoinError>) {
    if let Some(join) = join.take() {
        join.finish(outcome);
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
    fn poll(mut self: Pin<&mut Self>, aborted: bool, cx: &mut Context<'_>) -> Poll<()> {
        if aborted {
            self.as_mut().cancel();
            return Poll::Ready(());
        }
        let mut this = self.project();
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
                finish(this.join, outcome);
                Poll::Ready(())
            }
            Err(payload) => {
                drop_future(this.future);
                finish(this.join, Err(JoinError::panicked(payload)));
                Poll::Ready(())
            }
        }
    }

    fn cancel(self: Pin<&mut Self>) {
        let this = self.project();
        if this.join.is_none() {
            return;
        }
        let err = drop_future(this.future).unwrap_or_else(JoinError::cancelled);
        finish(this.join, Err(err));
    }
}
