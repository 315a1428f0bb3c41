//! The local executor of one reactor: its tasks, run queues and loop.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use slab::Slab;

use crate::driver::{Driver, Unpark};
use crate::join::{JoinHandle, JoinState};
use crate::park::ParkState;
use crate::task::{RawTask, TaskCell, TaskId, TaskWaker, MAIN_TASK};
use crate::timer::TimerQueue;

/// Tasks polled per loop turn before the reactor looks at I/O again, so that a busy task set
/// cannot starve completions.
const TASKS_PER_TURN: usize = 128;

/// The part of a reactor that other threads reach: through wakers, timers and handles.
pub(crate) struct Shared {
    /// Tasks woken from other threads, drained by the reactor every turn.
    remote: Mutex<Vec<TaskId>>,
    park: ParkState,
    unpark: Arc<dyn Unpark>,
    pub(crate) timers: TimerQueue,
}

impl Shared {
    /// Queues task `id` on this reactor, from any thread.
    pub(crate) fn schedule(&self, id: TaskId) {
        let queued_locally = with_local(|local| {
            if std::ptr::eq(Arc::as_ptr(&local.shared), self) {
                local.run_queue.borrow_mut().push_back(id);
                true
            } else {
                false
            }
        });
        if queued_locally != Some(true) {
            self.remote.lock().push(id);
            self.notify();
        }
    }

    /// Tells the reactor it has new work; wakes its driver only if it is parked.
    pub(crate) fn notify(&self) {
        if self.park.notify() {
            self.unpark.unpark();
        }
    }

    /// Whether the calling thread is this reactor.
    pub(crate) fn is_current(&self) -> bool {
        with_local(|local| std::ptr::eq(Arc::as_ptr(&local.shared), self)).unwrap_or(false)
    }
}

struct Slot {
    generation: u32,
    /// `None` while the task is being polled.
    task: Option<Pin<Box<dyn RawTask>>>,
    waker: Waker,
    flag: Arc<TaskWaker>,
}

/// The reactor-thread-only part of the executor.
struct Local {
    shared: Arc<Shared>,
    run_queue: RefCell<VecDeque<TaskId>>,
    tasks: RefCell<Slab<Slot>>,
    next_generation: Cell<u32>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
}

fn with_local<R>(f: impl FnOnce(&Local) -> R) -> Option<R> {
    CURRENT
        .try_with(|current| current.borrow().as_ref().map(|local| f(local)))
        .ok()
        .flatten()
}

/// The shared part of the calling thread's reactor, if it is one.
pub(crate) fn current_shared() -> Option<Arc<Shared>> {
    with_local(|local| local.shared.clone())
}

/// Whether the calling thread is running a reactor.
pub fn in_runtime() -> bool {
    with_local(|_| ()).is_some()
}

impl Local {
    fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let generation = self.next_generation.get();
        self.next_generation.set(generation.wrapping_add(1));
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        let id = (u64::from(generation) << 32) | entry.key() as u64;
        let flag = TaskWaker::new(id, &self.shared);
        let waker = Waker::from(flag.clone());
        let join = JoinState::new(waker.clone());
        let task: Pin<Box<dyn RawTask>> = Box::pin(TaskCell::new(future, join.clone()));
        entry.insert(Slot {
            generation,
            task: Some(task),
            waker,
            flag: flag.clone(),
        });
        drop(tasks);
        flag.scheduled.store(true, Ordering::Release);
        self.run_queue.borrow_mut().push_back(id);
        JoinHandle::new(join)
    }

    fn run_task(&self, id: TaskId) {
        let key = (id & u64::from(u32::MAX)) as usize;
        let generation = (id >> 32) as u32;
        let (mut task, waker) = {
            let mut tasks = self.tasks.borrow_mut();
            let Some(slot) = tasks.get_mut(key) else {
                return;
            };
            if slot.generation != generation {
                return;
            }
            let Some(task) = slot.task.take() else { return };
            slot.flag.scheduled.store(false, Ordering::Release);
            (task, slot.waker.clone())
        };
        let done = task
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready();
        let mut tasks = self.tasks.borrow_mut();
        if done {
            tasks.remove(key);
        } else if let Some(slot) = tasks.get_mut(key) {
            slot.task = Some(task);
        }
    }

    fn drain_remote(&self) {
        let mut remote = self.shared.remote.lock();
        if !remote.is_empty() {
            self.run_queue.borrow_mut().extend(remote.drain(..));
        }
    }

    fn pop(&self) -> Option<TaskId> {
        self.run_queue.borrow_mut().pop_front()
    }

    /// Drops every task (cancelling its handle), including tasks spawned while dropping.
    fn cancel_all(&self) {
        loop {
            let tasks: Vec<Slot> = self.tasks.borrow_mut().drain().collect();
            if tasks.is_empty() {
                break;
            }
            for slot in tasks {
                if let Some(mut task) = slot.task {
                    task.as_mut().cancel();
                }
            }
        }
        self.run_queue.borrow_mut().clear();
    }
}

/// Spawns `future` on the calling thread's reactor. The future need not be `Send`.
///
/// # Panics
/// If the calling thread is not running a runtime.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    with_local(|local| local.spawn(future))
        .expect("`spawn` called outside a runtime: call it from a task or inside `block_on`")
}

/// Yields once to the other tasks of the reactor.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Installs the executor as the thread's current one, and on drop cancels its tasks (while the
/// driver is still entered) and uninstalls it, on return and on unwind alike.
struct Installed {
    local: Rc<Local>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        self.local.cancel_all();
        CURRENT.with(|current| current.borrow_mut().take());
    }
}

/// Runs `future` to completion on the calling thread, with `driver` as its reactor's driver;
/// tasks spawned meanwhile run too. When `future` completes, the tasks still running are
/// dropped and their handles report cancellation.
///
/// Fails only if the driver fails for a reason other than `EINTR`.
///
/// # Panics
/// If the calling thread already runs a reactor, or if `future` panics.
pub fn block_on<D: Driver, F: Future>(mut driver: D, future: F) -> io::Result<F::Output> {
    assert!(
        !in_runtime(),
        "cannot start a runtime inside a runtime: `block_on` was called from a reactor thread"
    );
    let shared = Arc::new(Shared {
        remote: Mutex::new(Vec::new()),
        park: ParkState::default(),
        unpark: driver.unparker(),
        timers: TimerQueue::default(),
    });
    let local = Rc::new(Local {
        shared: shared.clone(),
        run_queue: RefCell::new(VecDeque::new()),
        tasks: RefCell::new(Slab::new()),
        next_generation: Cell::new(0),
    });
    let _enter = driver.enter();
    CURRENT.with(|current| *current.borrow_mut() = Some(local.clone()));
    let installed = Installed { local };
    let local = &installed.local;

    let main_flag = TaskWaker::new(MAIN_TASK, &shared);
    let main_waker = Waker::from(main_flag.clone());
    let mut main_cx = Context::from_waker(&main_waker);
    let mut future = pin!(future);
    main_flag.scheduled.store(true, Ordering::Release);
    local.run_queue.borrow_mut().push_back(MAIN_TASK);

    loop {
        shared.park.take_notified();
        local.drain_remote();
        for _ in 0..TASKS_PER_TURN {
            let Some(id) = local.pop() else { break };
            if id == MAIN_TASK {
                main_flag.scheduled.store(false, Ordering::Release);
                if let Poll::Ready(output) = future.as_mut().poll(&mut main_cx) {
                    drop(installed);
                    return Ok(output);
                }
            } else {
                local.run_task(id);
            }
        }

        let busy = !local.run_queue.borrow().is_empty();
        let timeout = if busy {
            Some(Duration::ZERO)
        } else {
            shared
                .timers
                .next_deadline()
                .map(|d| d.saturating_duration_since(Instant::now()))
        };
        let blocking = timeout != Some(Duration::ZERO) && shared.park.begin_park();
        let res = driver.park(if blocking {
            timeout
        } else {
            Some(Duration::ZERO)
        });
        if blocking {
            shared.park.end_park();
        }
        match res {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        shared.timers.fire(Instant::now());
    }
}
