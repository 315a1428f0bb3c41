//! The worker pool: threads that run `Send` futures and blocking closures off the reactors.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Wake, Waker};

use parking_lot::{Condvar, Mutex};

use crate::join::{Abortable, JoinError, JoinHandle, JoinState};
use crate::task::{RawTask, TaskCell};
use crate::task_state::TaskState;

enum Job {
    Poll(Arc<PoolTask>),
    Run(Box<dyn FnOnce() + Send>),
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    shutdown: bool,
}

/// What the pool's threads and its tasks' wakers share.
#[derive(Default)]
pub(crate) struct PoolInner {
    queue: Mutex<Queue>,
    available: Condvar,
}

impl PoolInner {
    fn push(&self, job: Job) {
        let mut q = self.queue.lock();
        if q.shutdown {
            return; // dropped: its handle reports cancellation when the job is dropped
        }
        q.jobs.push_back(job);
        drop(q);
        self.available.notify_one();
    }

    /// Runs jobs until shutdown; the body of each pool thread.
    pub(crate) fn work(&self) {
        loop {
            let job = {
                let mut q = self.queue.lock();
                loop {
                    if let Some(job) = q.jobs.pop_front() {
                        break job;
                    }
                    if q.shutdown {
                        return;
                    }
                    self.available.wait(&mut q);
                }
            };
            match job {
                Job::Poll(task) => task.run(),
                Job::Run(f) => f(),
            }
        }
    }

    /// Stops the threads after the jobs already running; queued jobs are dropped.
    pub(crate) fn shutdown(&self) {
        let jobs = {
            let mut q = self.queue.lock();
            q.shutdown = true;
            std::mem::take(&mut q.jobs)
        };
        self.available.notify_all();
        drop(jobs);
    }
}

/// A future on the pool.
struct PoolTask {
    task: Mutex<Option<Pin<Box<dyn RawTask + Send>>>>,
    state: TaskState,
    pool: Weak<PoolInner>,
}

impl PoolTask {
    fn run(self: Arc<Self>) {
        let aborted = self.state.begin_poll();
        let waker = Waker::from(self.clone());
        let mut slot = self.task.lock();
        if let Some(task) = slot.as_mut() {
            if crate::coop::budgeted(|| {
                task.as_mut()
                    .poll(aborted, &mut Context::from_waker(&waker))
                    .is_ready()
            }) {
                *slot = None;
            }
        }
    }

    /// Puts the task on its pool's queue, if the pool still runs.
    fn queue(self: &Arc<Self>) {
        if let Some(pool) = self.pool.upgrade() {
            pool.push(Job::Poll(self.clone()));
        }
    }
}

impl Wake for PoolTask {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.state.wake() {
            self.queue();
        }
    }
}

impl Abortable for PoolTask {
    fn wake_to_abort(self: Arc<Self>) {
        if self.state.abort() {
            self.queue();
        }
    }
}

impl Drop for PoolTask {
    fn drop(&mut self) {
        if let Some(mut task) = self.task.get_mut().take() {
            task.as_mut().cancel();
        }
    }
}

/// Spawns `future` on `pool`.
pub(crate) fn spawn<F>(pool: &Arc<PoolInner>, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut join = None;
    let task = Arc::new_cyclic(|me: &Weak<PoolTask>| {
        let state = JoinState::new(me.clone());
        join = Some(JoinHandle::new(state.clone()));
        PoolTask {
            task: Mutex::new(Some(Box::pin(TaskCell::new(future, state)))),
            state: TaskState::queued(),
            pool: Arc::downgrade(pool),
        }
    });
    pool.push(Job::Poll(task));
    join.expect("`new_cyclic` ran the closure")
}

/// Runs `f` on `pool`; aborting the handle does not stop `f` once it started.
pub(crate) fn spawn_blocking<F, R>(pool: &Arc<PoolInner>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let state = Arc::new(TaskState::queued());
    let join = JoinState::new(Arc::downgrade(&state) as Weak<dyn Abortable>);
    let mut pending = Unfinished(Some(join.clone()));
    pool.push(Job::Run(Box::new(move || {
        let output = pending.0.take().expect("runs once");
        if state.begin_poll() {
            output.finish(Err(JoinError::cancelled()));
            return;
        }
        let res = catch_unwind(AssertUnwindSafe(f)).map_err(JoinError::panicked);
        output.finish(res);
    })));
    JoinHandle::new(join)
}

/// The output slot of a blocking job; a job dropped without running reports cancellation.
struct Unfinished<R>(Option<Arc<JoinState<R>>>);

impl<R> Drop for Unfinished<R> {
    fn drop(&mut self) {
        if let Some(output) = self.0.take() {
            output.finish(Err(JoinError::cancelled()));
        }
    }
}
