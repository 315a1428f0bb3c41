//! `JoinHandle`: the output of a spawned task, awaitable from any thread.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// Why a task produced no output.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    Panicked(Box<dyn Any + Send + 'static>),
}

impl JoinError {
    pub(crate) fn cancelled() -> Self {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panicked(payload: Box<dyn Any + Send + 'static>) -> Self {
        JoinError {
            repr: Repr::Panicked(payload),
        }
    }

    /// The task was aborted, or its runtime shut down before it finished.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panicked(_))
    }

    /// The panic payload, if the task panicked; resume it with `std::panic::resume_unwind`.
    pub fn into_panic(self) -> Option<Box<dyn Any + Send + 'static>> {
        match self.repr {
            Repr::Panicked(p) => Some(p),
            Repr::Cancelled => None,
        }
    }

    fn panic_message(&self) -> Option<&str> {
        match &self.repr {
            Repr::Panicked(p) => p
                .downcast_ref::<&'static str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str)),
            Repr::Cancelled => None,
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repr, self.panic_message()) {
            (Repr::Cancelled, _) => f.write_str("task was cancelled"),
            (Repr::Panicked(_), Some(msg)) => write!(f, "task panicked: {msg}"),
            (Repr::Panicked(_), None) => f.write_str("task panicked"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinError({self})")
    }
}

impl std::error::Error for JoinError {}

impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> Self {
        std::io::Error::other(e.to_string())
    }
}

enum Stage<T> {
    Running(Option<Waker>),
    Finished(Result<T, JoinError>),
    Taken,
}

/// A task that a handle's abort wakes, so that the abort is noticed promptly.
pub(crate) trait Abortable: Send + Sync {
    /// Queues the task to run (it reads the abort when it does).
    fn wake_to_abort(self: Arc<Self>);
}

/// The task of a handle. Weak, because the task owns its output slot: a strong reference
/// would make a cycle.
pub(crate) type AbortTarget = Weak<dyn Abortable>;

/// State shared by a task and its handle. Whether the task was aborted is the task's to
/// know (its `TaskState`): the handle only tells it.
pub(crate) struct JoinState<T> {
    stage: Mutex<Stage<T>>,
    task: AbortTarget,
}

impl<T> JoinState<T> {
    pub(crate) fn new(task: AbortTarget) -> Arc<Self> {
        Arc::new(JoinState {
            stage: Mutex::new(Stage::Running(None)),
            task,
        })
    }

    /// Stores the task's outcome and wakes whoever awaits the handle.
    pub(crate) fn finish(&self, outcome: Result<T, JoinError>) {
        let prev = std::mem::replace(&mut *self.stage.lock(), Stage::Finished(outcome));
        if let Stage::Running(Some(waker)) = prev {
            waker.wake();
        }
    }
}

/// An owned permission to await a spawned task's output. Dropping it detaches the task.
pub struct JoinHandle<T> {
    state: Arc<JoinState<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(state: Arc<JoinState<T>>) -> Self {
        JoinHandle { state }
    }

    /// Asks the task to stop: its future is dropped the next time its reactor gets to it, and
    /// the handle then yields a cancelled [`JoinError`]. Does nothing if the task has finished.
    pub fn abort(&self) {
        if let Some(task) = self.state.task.upgrade() {
            task.wake_to_abort();
        }
    }

    /// Whether the task has finished (its output may already have been taken).
    pub fn is_finished(&self) -> bool {
        !matches!(*self.state.stage.lock(), Stage::Running(_))
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut stage = self.state.stage.lock();
        match std::mem::replace(&mut *stage, Stage::Taken) {
            Stage::Finished(outcome) => Poll::Ready(outcome),
            Stage::Running(_) => {
                *stage = Stage::Running(Some(cx.waker().clone()));
                Poll::Pending
            }
            Stage::Taken => panic!("JoinHandle polled after it returned its output"),
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
