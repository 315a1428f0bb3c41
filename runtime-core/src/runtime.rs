//! A runtime of several reactors and a worker pool: starting it, reaching it from any of its
//! threads, and stopping it.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::{Poll, Waker};

use parking_lot::{Condvar, Mutex};

use crate::driver::Driver;
use crate::join::JoinHandle;
use crate::metrics::MetricsSnapshot;
use crate::notify::Notify;
use crate::pool::{self, PoolInner};
use crate::scheduler::{run_reactor, set_timer_home, ReactorConfig, ReactorHandle};

/// The shape of a runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Reactor threads, the calling thread being reactor 0.
    pub reactors: usize,
    /// Worker pool threads.
    pub pool_threads: usize,
    /// How foreign threads wake a reactor.
    pub wake: Notify,
    /// Pin reactor `i` to CPU `i % cpus`.
    pub pin_reactors: bool,
    /// The longest one park may wait, whatever the wake strategy (`None`: unbounded).
    pub max_park: Option<std::time::Duration>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        RuntimeConfig {
            reactors: cpus,
            pool_threads: cpus,
            wake: Notify::default(),
            pin_reactors: false,
            max_park: None,
        }
    }
}

/// What every thread of a runtime can reach.
struct Context {
    reactors: Vec<ReactorHandle>,
    pool: Arc<PoolInner>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Arc<Context>>> = const { RefCell::new(None) };
}

fn context() -> Option<Arc<Context>> {
    CONTEXT.with(|c| c.borrow().clone())
}

#[track_caller]
fn expect_context() -> Arc<Context> {
    context().expect("no runtime on this thread: call this from a runtime's reactor or pool thread")
}

/// Spawns a `Send` future on reactor `index`, from any thread of the runtime.
///
/// # Panics
/// Outside a runtime, or if `index` is not a reactor of it.
#[track_caller]
pub fn spawn_on<F>(index: usize, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let ctx = expect_context();
    let n = ctx.reactors.len();
    let reactor = ctx
        .reactors
        .get(index)
        .unwrap_or_else(|| panic!("spawn_on({index}): the runtime has {n} reactors"));
    reactor.spawn(future)
}

/// Handles to every reactor of the calling thread's runtime (empty outside one).
pub fn reactors() -> Vec<ReactorHandle> {
    context().map(|c| c.reactors.clone()).unwrap_or_default()
}

/// A snapshot of every reactor's counters, indexed by reactor.
pub fn metrics() -> Vec<MetricsSnapshot> {
    reactors().iter().map(|r| r.metrics().snapshot()).collect()
}

/// Spawns a `Send` future on the worker pool.
///
/// # Panics
/// Outside a runtime.
#[track_caller]
pub fn spawn_pool<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    pool::spawn(&expect_context().pool, future)
}

/// Lets `future` run to completion without anyone waiting for it: on the calling reactor, or on
/// the pool from any other thread of a runtime. Returns `false` (dropping `future`) outside a
/// runtime.
pub fn detach<F>(future: F) -> bool
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if crate::scheduler::in_runtime() {
        drop(crate::scheduler::spawn(future));
        return true;
    }
    match context() {
        Some(cx) => {
            drop(pool::spawn(&cx.pool, future));
            true
        }
        None => false,
    }
}

/// Runs a blocking closure on the worker pool.
///
/// # Panics
/// Outside a runtime.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    pool::spawn_blocking(&expect_context().pool, f)
}

/// How the runtime's threads meet at startup: reactor handles as they come up, the first
/// failure, and the context reactor 0 builds once all are up.
#[derive(Default)]
struct Startup {
    state: Mutex<StartupState>,
    changed: Condvar,
}

#[derive(Default)]
struct StartupState {
    handles: Vec<Option<ReactorHandle>>,
    failure: Option<(io::ErrorKind, String)>,
    context: Option<Arc<Context>>,
}

impl Startup {
    fn update(&self, f: impl FnOnce(&mut StartupState)) {
        f(&mut self.state.lock());
        self.changed.notify_all();
    }

    fn publish(&self, index: usize, result: io::Result<ReactorHandle>) {
        self.update(|s| match result {
            Ok(h) => s.handles[index] = Some(h),
            Err(e) => {
                s.failure.get_or_insert((e.kind(), e.to_string()));
            }
        });
    }

    /// Waits for every reactor's handle, or the first failure.
    fn wait_handles(&self) -> io::Result<Vec<ReactorHandle>> {
        let mut s = self.state.lock();
        loop {
            if let Some((kind, msg)) = &s.failure {
                return Err(io::Error::new(*kind, msg.clone()));
            }
            if s.handles.iter().all(Option::is_some) {
                return Ok(s.handles.iter().flatten().cloned().collect());
            }
            self.changed.wait(&mut s);
        }
    }

    /// Waits for the context, or `None` if startup failed.
    fn wait_context(&self) -> Option<Arc<Context>> {
        let mut s = self.state.lock();
        loop {
            if s.failure.is_some() {
                return None;
            }
            if let Some(ctx) = &s.context {
                return Some(ctx.clone());
            }
            self.changed.wait(&mut s);
        }
    }
}

/// Tells a reactor thread to return from its loop.
#[derive(Default)]
struct Stop {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Stop {
    fn stop(&self) {
        let waker = {
            let mut s = self.state.lock();
            s.0 = true;
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            let mut s = self.state.lock();
            if s.0 {
                Poll::Ready(())
            } else {
                s.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// Pins the calling thread to CPU `index % online CPUs` (best effort: a refusal, in a
/// restricted cpuset, leaves the thread where it is). Returns the affinity it had, to restore.
fn pin_to_cpu(index: usize) -> Option<libc::cpu_set_t> {
    // Online CPUs, not `available_parallelism` (the calling thread's own affinity, which is
    // one CPU if an earlier runtime pinned it).
    // SAFETY: sysconf has no preconditions.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut previous: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `previous` is a valid cpu_set_t of the size passed; 0 is the calling thread.
    let saved = unsafe {
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut previous)
    } == 0;
    // SAFETY: as above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `index % online` is below the number of CPUs, far below CPU_SETSIZE.
    unsafe { libc::CPU_SET(index % online, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the calling thread.
    let _ = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    saved.then_some(previous)
}

/// Gives the calling thread back the affinity `pin_to_cpu` saved.
fn restore_affinity(previous: Option<libc::cpu_set_t>) {
    if let Some(set) = previous {
        // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the calling thread.
        let _ = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    }
}

/// Installs `ctx` as the calling thread's runtime until the guard drops.
struct Entered;

impl Entered {
    fn new(ctx: &Arc<Context>) -> Self {
        CONTEXT.with(|c| *c.borrow_mut() = Some(ctx.clone()));
        Entered
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        CONTEXT.with(|c| c.borrow_mut().take());
    }
}

/// Runs `future` on a runtime of `config.reactors` reactors (the calling thread is reactor 0)
/// and `config.pool_threads` pool threads, with drivers made by `make_driver(index)` on each
/// reactor's own thread. When `future` completes, every reactor and pool thread is stopped and
/// joined, and their tasks and operations are cancelled, before this returns.
pub fn run_runtime<D, M, F>(
    config: &RuntimeConfig,
    make_driver: M,
    future: F,
) -> io::Result<F::Output>
where
    D: Driver,
    M: Fn(usize) -> io::Result<D> + Send + Sync + 'static,
    F: Future,
{
    let n = config.reactors.max(1);
    let make_driver = Arc::new(make_driver);
    let startup = Arc::new(Startup::default());
    startup.update(|s| s.handles = vec![None; n]);
    let others = OtherReactors::start(config, &make_driver, &startup);
    // Reactor 0 is the calling thread: its affinity is given back when the runtime ends.
    let caller_affinity = config.pin_reactors.then(|| pin_to_cpu(0)).flatten();
    let driver = match make_driver(0) {
        Ok(d) => d,
        Err(e) => {
            let failed = io::Error::new(e.kind(), "reactor 0 failed to start");
            startup.publish(0, Err(failed));
            others.stop();
            restore_affinity(caller_affinity);
            return Err(e);
        }
    };
    let res = run_reactor(driver, reactor_config(config, 0), |handle| {
        startup.publish(0, Ok(handle));
        let ctx = startup.wait_handles().map(|reactors| {
            let ctx = Arc::new(Context {
                reactors,
                pool: Arc::new(PoolInner::default()),
            });
            startup.update(|s| s.context = Some(ctx.clone()));
            ctx
        });
        let pool = ctx
            .as_ref()
            .ok()
            .map(|ctx| Pool::start(ctx, config.pool_threads));
        let entered = ctx.as_ref().ok().map(Entered::new);
        async move {
            let _entered = entered;
            let output = match ctx {
                Ok(_) => Ok(future.await),
                Err(e) => Err(e),
            };
            // Stop and join the pool while reactor 0 still runs, so that no pool task registers
            // with it (a timer, say) after it is torn down. Pool threads block on a condvar,
            // never on a reactor, so joining them here cannot wait on reactor 0 itself.
            if let Some(pool) = pool {
                pool.stop();
            }
            output
        }
    });
    // The other reactors stop after reactor 0's driver is gone: a wake from here must not be
    // a `MSG_RING` that waits in reactor 0's ring for a submission that would never come.
    others.stop();
    restore_affinity(caller_affinity);
    res?
}

fn reactor_config(config: &RuntimeConfig, index: usize) -> ReactorConfig {
    ReactorConfig {
        index,
        wake: config.wake,
        max_park: config.max_park,
    }
}

/// Reactors 1..N, each on a thread of its own, running until stopped.
struct OtherReactors {
    stops: Vec<Arc<Stop>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl OtherReactors {
    /// Starts them; each publishes its handle (or why it failed) to `startup`.
    fn start<D, M>(config: &RuntimeConfig, make_driver: &Arc<M>, startup: &Arc<Startup>) -> Self
    where
        D: Driver,
        M: Fn(usize) -> io::Result<D> + Send + Sync + 'static,
    {
        let n = config.reactors.max(1);
        let stops: Vec<Arc<Stop>> = (1..n).map(|_| Arc::default()).collect();
        let mut threads = Vec::new();
        for (i, stop) in (1..n).zip(&stops) {
            let (make_driver, stop) = (make_driver.clone(), stop.clone());
            let thread_startup = startup.clone();
            let reactor_config = reactor_config(config, i);
            let pin = config.pin_reactors;
            let spawned = std::thread::Builder::new()
                .name(format!("reactor-{i}"))
                .spawn(move || {
                    let startup = thread_startup;
                    if pin {
                        let _ = pin_to_cpu(i);
                    }
                    let driver = match make_driver(i) {
                        Ok(d) => d,
                        Err(e) => return startup.publish(i, Err(e)),
                    };
                    let res = run_reactor(driver, reactor_config, |handle| {
                        startup.publish(i, Ok(handle));
                        async move {
                            let ctx = startup.wait_context();
                            let _entered = ctx.as_ref().map(Entered::new);
                            if ctx.is_some() {
                                stop.wait().await;
                            }
                        }
                    });
                    if let Err(e) = res {
                        eprintln!("reactor {i} failed: {e}");
                    }
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => startup.publish(i, Err(e)),
            }
        }
        OtherReactors { stops, threads }
    }

    /// Stops them and joins their threads.
    fn stop(self) {
        for stop in &self.stops {
            stop.stop();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The pool's threads.
struct Pool {
    inner: Arc<PoolInner>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    fn start(ctx: &Arc<Context>, n: usize) -> Self {
        let mut threads = Vec::new();
        for p in 0..n {
            let ctx = ctx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("pool-{p}"))
                .spawn(move || {
                    let _entered = Entered::new(&ctx);
                    set_timer_home(&ctx.reactors[0]);
                    ctx.pool.work();
                });
            if let Ok(t) = spawned {
                threads.push(t);
            }
        }
        if threads.is_empty() {
            // No thread would ever run a job: refuse them at once (each handle reports
            // cancellation) instead of queueing them for ever.
            ctx.pool.shutdown();
        }
        Pool {
            inner: ctx.pool.clone(),
            threads,
        }
    }

    /// Stops the threads after the jobs they run, and joins them.
    fn stop(self) {
        self.inner.shutdown();
        for t in self.threads {
            let _ = t.join();
        }
    }
}
