//! The local executor of one reactor: its tasks, run queues and loop.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use slab::Slab;

use crate::driver::{Driver, Unpark};
use crate::join::JoinHandle;
use crate::metrics::Metrics;
use crate::notify::Notify;
use crate::park::ParkState;
use crate::task::{Runnable, Task};
use crate::task_state::TaskState;
use crate::timer::TimerQueue;

/// Tasks polled per loop turn before the reactor looks at I/O again, so that a busy task set
/// cannot starve completions.
const TASKS_PER_TURN: usize = 128;

/// Work handed to a reactor from another thread: run on the reactor thread.
type HandedOff = Box<dyn FnOnce() + Send>;

/// An entry of a run queue: a spawned task, or the future `block_on` runs.
pub(crate) enum Queued {
    Main,
    Task(Arc<dyn Runnable>),
}

/// What other threads queue for a reactor; closed when the reactor ends, after which what is
/// queued is dropped at once rather than kept in a queue nobody drains (where a task would
/// keep alive the reactor state that holds it).
struct Inbox<T> {
    items: Vec<T>,
    closed: bool,
}

impl<T> Default for Inbox<T> {
    fn default() -> Self {
        Inbox {
            items: Vec::new(),
            closed: false,
        }
    }
}

impl<T> Inbox<T> {
    /// Queues `item`, unless the inbox is closed (then it is handed back, to be dropped after
    /// the lock is released: dropping a task may run its destructors).
    fn push(&mut self, item: T) -> Result<(), T> {
        if self.closed {
            return Err(item);
        }
        self.items.push(item);
        Ok(())
    }

    fn close(&mut self) -> Vec<T> {
        self.closed = true;
        std::mem::take(&mut self.items)
    }
}

/// The part of a reactor that other threads reach: through wakers, timers and handles.
pub(crate) struct Shared {
    index: usize,
    /// Tasks woken from other threads, drained by the reactor every turn.
    woken: Mutex<Inbox<Queued>>,
    /// Closures handed off from other threads, run by the reactor every turn.
    handoffs: Mutex<Inbox<HandedOff>>,
    park: ParkState,
    unpark: Arc<dyn Unpark>,
    wake: Notify,
    pub(crate) timers: TimerQueue,
    metrics: Metrics,
    /// What the layer above attached to the reactor (the facade: which backend runs and why).
    label: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
}

impl Shared {
    fn new(config: &ReactorConfig, unpark: Arc<dyn Unpark>) -> Arc<Self> {
        Arc::new(Shared {
            index: config.index,
            woken: Mutex::default(),
            handoffs: Mutex::default(),
            park: ParkState::default(),
            unpark,
            wake: config.wake,
            timers: TimerQueue::default(),
            metrics: Metrics::default(),
            label: std::sync::OnceLock::new(),
        })
    }

    /// Queues `task` on this reactor from another thread, waking it.
    fn schedule_from_afar(&self, task: Queued) {
        let queued = self.woken.lock().push(task);
        if queued.is_err() {
            return;
        }
        self.metrics.handoffs.add(1);
        self.notify();
    }

    /// Tells the reactor it has new work, waking its driver as the wake strategy says.
    pub(crate) fn notify(&self) {
        let parked = self.park.notify();
        let write = match self.wake {
            Notify::Always => true,
            Notify::IfParked => parked,
            Notify::Never(_) => false,
        };
        if write {
            self.unpark.unpark();
            self.metrics.wakes_written.add(1);
        } else {
            self.metrics.wakes_suppressed.add(1);
        }
    }

    /// Whether the calling thread is this reactor.
    pub(crate) fn is_current(&self) -> bool {
        with_local(|local| std::ptr::eq(Arc::as_ptr(&local.shared), self)).unwrap_or(false)
    }
}

/// Queues a woken `task` on its reactor, from any thread.
pub(crate) fn schedule(task: Arc<dyn Runnable>) {
    let reactor = Arc::as_ptr(task.reactor());
    if let Err(Queued::Task(task)) = queue_locally(reactor, Queued::Task(task)) {
        task.reactor()
            .clone()
            .schedule_from_afar(Queued::Task(task));
    }
}

/// Puts `task` on the run queue of the calling thread if that thread is `reactor`; hands it
/// back otherwise.
fn queue_locally(reactor: *const Shared, task: Queued) -> Result<(), Queued> {
    let mut task = Some(task);
    with_local(|local| {
        if std::ptr::eq(Arc::as_ptr(&local.shared), reactor) {
            if let Some(task) = task.take() {
                local.run_queue.borrow_mut().push_back(task);
            }
        }
    });
    task.map_or(Ok(()), Err)
}

/// The reactor-thread-only part of the executor.
struct Local {
    shared: Arc<Shared>,
    run_queue: RefCell<VecDeque<Queued>>,
    /// Every task placed on the reactor and not yet over, so that the reactor can cancel them
    /// when it ends.
    tasks: RefCell<Slab<Arc<dyn Runnable>>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
    /// On threads that are not reactors (the worker pool): the reactor whose timers they use.
    static HOME: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

/// A handle to one reactor, usable from any thread.
#[derive(Clone)]
pub struct ReactorHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ReactorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReactorHandle")
            .field("index", &self.shared.index)
            .finish()
    }
}

impl ReactorHandle {
    /// The reactor's index in its runtime.
    pub fn index(&self) -> usize {
        self.shared.index
    }

    /// Attaches `label` to the reactor, once (later calls are ignored): a value that every
    /// thread of the runtime can read back with [`label`](ReactorHandle::label).
    pub fn set_label(&self, label: Arc<dyn std::any::Any + Send + Sync>) {
        let _ = self.shared.label.set(label);
    }

    /// The value attached with [`set_label`](ReactorHandle::set_label), if any.
    pub fn label(&self) -> Option<&Arc<dyn std::any::Any + Send + Sync>> {
        self.shared.label.get()
    }

    /// Whether the calling thread is this reactor.
    pub fn is_current(&self) -> bool {
        self.shared.is_current()
    }

    /// The reactor's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Tells the reactor that work was queued for it elsewhere (say, in its driver), waking it
    /// as its wake strategy says. Counts one handoff.
    pub fn notify(&self) {
        self.shared.metrics.handoffs.add(1);
        self.shared.notify();
    }

    /// Runs `f` on the reactor thread, during its next loop turn. If the reactor has ended,
    /// `f` is dropped instead.
    pub fn run(&self, f: impl FnOnce() + Send + 'static) {
        let queued = self.shared.handoffs.lock().push(Box::new(f));
        if queued.is_ok() {
            self.notify();
        }
    }

    /// Spawns `future` on this reactor from any thread. If the reactor has ended, the handle
    /// reports the task as cancelled.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // The task is made here, from a `Send` future: until its reactor places it, this
        // thread may be the one that drops it.
        let (task, handle) = Task::new(future, &self.shared);
        self.run(move || {
            with_local(|local| local.place(task)).expect("handed-off closures run on their reactor")
        });
        handle
    }
}

/// The calling thread's reactor, if it is one.
pub fn current_reactor() -> Option<ReactorHandle> {
    with_local(|local| ReactorHandle {
        shared: local.shared.clone(),
    })
}

/// Makes the calling (non-reactor) thread use `reactor`'s timers.
pub fn set_timer_home(reactor: &ReactorHandle) {
    HOME.with(|h| *h.borrow_mut() = Some(reactor.shared.clone()));
}

fn with_local<R>(f: impl FnOnce(&Local) -> R) -> Option<R> {
    CURRENT
        .try_with(|current| current.borrow().as_ref().map(|local| f(local)))
        .ok()
        .flatten()
}

/// The shared part of the calling thread's reactor, or of the reactor it borrows timers from.
pub(crate) fn current_shared() -> Option<Arc<Shared>> {
    with_local(|local| local.shared.clone()).or_else(|| HOME.with(|h| h.borrow().clone()))
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
        // A future that may not be `Send` is placed at once: from here on its task is only
        // dropped by this reactor (see `Task`'s `Send`).
        let (task, handle) = Task::new(future, &self.shared);
        self.place(task);
        handle
    }

    /// Puts a new task in the registry and on the run queue (it counts as queued already).
    fn place(&self, task: Arc<dyn Runnable>) {
        let mut tasks = self.tasks.borrow_mut();
        let entry = tasks.vacant_entry();
        task.set_key(entry.key());
        entry.insert(task.clone());
        drop(tasks);
        self.run_queue.borrow_mut().push_back(Queued::Task(task));
    }

    fn run_task(&self, task: Arc<dyn Runnable>) {
        if let Some(key) = crate::coop::budgeted(|| task.run()) {
            // Over: its future was dropped in this poll, so the registry lets go of it.
            self.tasks.borrow_mut().remove(key);
        }
    }

    fn drain_handoffs(&self) {
        let handed_off = std::mem::take(&mut self.shared.handoffs.lock().items);
        for f in handed_off {
            f();
        }
        let mut woken = self.shared.woken.lock();
        if !woken.items.is_empty() {
            self.run_queue.borrow_mut().extend(woken.items.drain(..));
        }
    }

    /// The start of a loop turn: what other threads queued joins the run queue.
    fn begin_turn(&self) {
        self.shared.metrics.loop_turns.add_local(1);
        self.shared.park.take_notified();
        self.drain_handoffs();
    }

    /// Polls up to [`TASKS_PER_TURN`] queued tasks; the main future's output if it completed.
    fn run_queued<F: Future>(&self, main: &mut MainTask<F>) -> Option<F::Output> {
        for _ in 0..TASKS_PER_TURN {
            match self.pop()? {
                Queued::Main => {
                    if let Poll::Ready(output) = main.poll() {
                        return Some(output);
                    }
                }
                Queued::Task(task) => self.run_task(task),
            }
        }
        None
    }

    /// How long the turn's park may wait: not at all with tasks still queued, else until the
    /// earliest timer or `max_park`.
    fn park_timeout(&self, max_park: Option<Duration>) -> Option<Duration> {
        if !self.run_queue.borrow().is_empty() {
            return Some(Duration::ZERO);
        }
        let timer = self
            .shared
            .timers
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        earliest(timer, max_park)
    }

    fn pop(&self) -> Option<Queued> {
        self.run_queue.borrow_mut().pop_front()
    }

    /// Drops every task (cancelling its handle), including tasks spawned while dropping.
    fn cancel_all(&self) {
        loop {
            let tasks: Vec<_> = self.tasks.borrow_mut().drain().collect();
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                task.cancel();
            }
        }
        let queued = std::mem::take(&mut *self.run_queue.borrow_mut());
        drop(queued);
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

impl Installed {
    /// Makes a reactor's local state the calling thread's, until dropped.
    fn new(shared: &Arc<Shared>) -> Self {
        let local = Rc::new(Local {
            shared: shared.clone(),
            run_queue: RefCell::new(VecDeque::new()),
            tasks: RefCell::new(Slab::new()),
        });
        CURRENT.with(|current| *current.borrow_mut() = Some(local.clone()));
        Installed { local }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        self.local.cancel_all();
        // Wakers left in the reactor's queues may own tasks that own the reactor's state (a
        // cycle): drop them with the reactor.
        self.local.shared.timers.clear();
        let handed_off = self.local.shared.handoffs.lock().close();
        drop(handed_off);
        let woken = self.local.shared.woken.lock().close();
        drop(woken);
        CURRENT.with(|current| current.borrow_mut().take());
    }
}

/// Settings of one reactor.
#[derive(Debug, Clone, Default)]
pub struct ReactorConfig {
    /// The reactor's index in its runtime.
    pub index: usize,
    /// How foreign threads wake it.
    pub wake: Notify,
    /// The longest one park may wait, besides what the wake strategy bounds.
    pub max_park: Option<Duration>,
}

/// Runs `future` to completion on the calling thread, with `driver` as its reactor's driver;
/// tasks spawned meanwhile run too. When `future` completes, the tasks still running are
/// dropped and their handles report cancellation.
///
/// Fails only if the driver fails for a reason other than `EINTR`.
///
/// # Panics
/// If the calling thread already runs a reactor, or if `future` panics.
pub fn block_on<D: Driver, F: Future>(driver: D, future: F) -> io::Result<F::Output> {
    run_reactor(driver, ReactorConfig::default(), |_| future)
}

/// As [`block_on`], with settings, and with the main future made from the reactor's handle
/// (so the caller can publish the handle before the reactor runs anything).
pub fn run_reactor<D: Driver, F: Future>(
    mut driver: D,
    config: ReactorConfig,
    make_future: impl FnOnce(ReactorHandle) -> F,
) -> io::Result<F::Output> {
    assert!(
        !in_runtime(),
        "cannot start a runtime inside a runtime: `block_on` was called from a reactor thread"
    );
    let shared = Shared::new(&config, driver.unparker());
    let handle = ReactorHandle {
        shared: shared.clone(),
    };
    let _enter = driver.enter(&handle);
    let installed = Installed::new(&shared);
    let local = &installed.local;
    let max_park = earliest(config.wake.max_park(), config.max_park);
    let mut main = MainTask::new(make_future(handle), &shared);
    loop {
        local.begin_turn();
        if let Some(output) = local.run_queued(&mut main) {
            drop(installed);
            return Ok(output);
        }
        let timeout = local.park_timeout(max_park);
        park(&mut driver, &shared, timeout)?;
        shared.timers.fire(Instant::now());
    }
}

/// The earlier of two optional bounds.
fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The future `block_on` runs: polled as a task of its own, woken like one.
struct MainTask<F: Future> {
    future: Pin<Box<F>>,
    flag: Arc<MainWaker>,
    waker: Waker,
}

/// The main task's waker: queues [`Queued::Main`] on its reactor.
struct MainWaker {
    state: TaskState,
    shared: Arc<Shared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.state.wake() {
            return;
        }
        if let Err(main) = queue_locally(Arc::as_ptr(&self.shared), Queued::Main) {
            self.shared.schedule_from_afar(main);
        }
    }
}

impl<F: Future> MainTask<F> {
    /// The main task, queued to run first.
    fn new(future: F, shared: &Arc<Shared>) -> Self {
        let flag = Arc::new(MainWaker {
            state: TaskState::queued(),
            shared: shared.clone(),
        });
        with_local(|local| local.run_queue.borrow_mut().push_back(Queued::Main));
        MainTask {
            future: Box::pin(future),
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    fn poll(&mut self) -> Poll<F::Output> {
        // Nothing aborts the main task.
        self.flag.state.begin_poll();
        let mut cx = Context::from_waker(&self.waker);
        crate::coop::budgeted(|| self.future.as_mut().poll(&mut cx))
    }
}

/// Waits in the driver at most `timeout`, announcing the wait to other threads (the parking
/// protocol) unless it is a poll that does not block.
fn park<D: Driver>(driver: &mut D, shared: &Shared, timeout: Option<Duration>) -> io::Result<()> {
    let blocking = timeout != Some(Duration::ZERO) && shared.park.begin_park();
    if blocking {
        shared.metrics.parks.add_local(1);
    }
    let res = driver.park(if blocking {
        timeout
    } else {
        Some(Duration::ZERO)
    });
    if blocking {
        shared.park.end_park();
    }
    match res {
        Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
        _ => Ok(()),
    }
}
