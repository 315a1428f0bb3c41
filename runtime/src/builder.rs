//! `Builder`: choosing the backend and running a runtime.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::str::FromStr;
use std::time::Duration;

use runtime_core::RuntimeConfig;

use crate::fast_paths::SwitchedOff;
use crate::wake::{parse_duration, WakeStrategy};

use crate::select::{self, DriverOptions};

/// Which I/O backend a runtime uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// io_uring where the kernel allows it, epoll otherwise (in builds with both).
    #[default]
    Auto,
    /// The io_uring ring driver.
    Uring,
    /// The epoll readiness driver.
    Epoll,
}

impl Backend {
    /// `"auto"`, `"uring"` or `"epoll"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Uring => "uring",
            Backend::Epoll => "epoll",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Backend {
    type Err = io::Error;

    fn from_str(s: &str) -> io::Result<Self> {
        match s {
            "auto" => Ok(Backend::Auto),
            "uring" | "io_uring" => Ok(Backend::Uring),
            "epoll" => Ok(Backend::Epoll),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown backend {other:?}: expected uring, epoll or auto"),
            )),
        }
    }
}

/// The backend a runtime runs: what [`Backend`] (a request, which may be `Auto`) resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The io_uring ring driver.
    Uring,
    /// The epoll readiness driver.
    Epoll,
}

impl BackendKind {
    /// `"uring"` or `"epoll"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Uring => "uring",
            BackendKind::Epoll => "epoll",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<BackendKind> for Backend {
    fn from(kind: BackendKind) -> Backend {
        match kind {
            BackendKind::Uring => Backend::Uring,
            BackendKind::Epoll => Backend::Epoll,
        }
    }
}

/// The backend a runtime runs on, and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    kind: BackendKind,
    reason: String,
}

impl BackendInfo {
    pub(crate) fn new(kind: BackendKind, reason: String) -> Self {
        BackendInfo { kind, reason }
    }

    /// io_uring or epoll.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Why this backend: who asked for it, and what was given up or fallen back from.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for BackendInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.kind, self.reason)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<BackendInfo>> = const { RefCell::new(None) };
}

/// The backend of the runtime the calling thread belongs to (a reactor or a pool thread), and
/// why it was chosen; `None` outside a runtime.
pub fn running_backend() -> Option<BackendInfo> {
    CURRENT.with(|c| c.borrow().clone()).or_else(|| {
        let reactor = runtime_core::reactors().into_iter().next()?;
        reactor.label()?.downcast_ref::<BackendInfo>().cloned()
    })
}

/// The environment variable that overrides the backend a program asks for.
pub const BACKEND_ENV: &str = "RUNTIME_BACKEND";

/// The environment variable that bounds every park (`"1ms"`), as [`Builder::max_park`] does.
/// For tools that cannot tell that a reactor blocks in `io_uring_enter` (valgrind 3.19 holds
/// every other thread of the program while one does).
pub const MAX_PARK_ENV: &str = "RUNTIME_MAX_PARK";

/// Configures and starts a runtime.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    backend: Backend,
    config: RuntimeConfig,
    wake: WakeStrategy,
    ring_entries: Option<u32>,
    off: SwitchedOff,
    latency_budget: Option<Duration>,
}

impl Builder {
    /// A builder with the default settings: [`Backend::Auto`] (overridable by
    /// `RUNTIME_BACKEND`), one reactor and one pool thread per CPU, and
    /// [`WakeStrategy::DirectFirst`].
    pub fn new() -> Self {
        Builder::default()
    }

    /// Asks for `backend`. `RUNTIME_BACKEND`, when set, still overrides it.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The number of reactor threads (at least 1; the thread calling `block_on` is reactor 0).
    pub fn reactors(mut self, n: usize) -> Self {
        self.config.reactors = n.max(1);
        self
    }

    /// The number of worker pool threads. 0 disables the pool: `pool::spawn` and
    /// `pool::spawn_blocking` then return handles that resolve at once to a cancelled
    /// `JoinError`.
    pub fn pool_threads(mut self, n: usize) -> Self {
        self.config.pool_threads = n;
        self
    }

    /// How other threads wake a reactor (see `docs/wake-strategies.md`).
    pub fn wake(mut self, strategy: WakeStrategy) -> Self {
        self.wake = strategy;
        self
    }

    /// io_uring: submission queue entries per ring (default 256; the completion queue gets
    /// twice as many). Small rings submit early and overflow their CQ more often; the driver
    /// handles both.
    pub fn ring_entries(mut self, entries: u32) -> Self {
        self.ring_entries = Some(entries);
        self
    }

    /// io_uring: whether a socket's reads go through one armed multishot receive into the
    /// ring's provided buffers (the default, where the kernel has them: 5.19 and later) or are
    /// each a one-shot receive into the caller's buffer (`false`).
    pub fn multishot_receive(mut self, on: bool) -> Self {
        self.off.set("multishot-receive", !on);
        self
    }

    /// io_uring: whether the reactor enters its ring by the index it registered it under
    /// (the default, where the kernel takes it: 5.18 and later), sparing the kernel an fd
    /// lookup per `io_uring_enter`, or by its fd.
    pub fn registered_ring_fd(mut self, on: bool) -> Self {
        self.off.set("registered-ring-fd", !on);
        self
    }

    /// io_uring: whether the ring is set up without the SQ index array (`NO_SQARRAY`, the
    /// default where the kernel takes it: 6.6 and later).
    pub fn no_sqarray(mut self, on: bool) -> Self {
        self.off.set("no-sqarray", !on);
        self
    }

    /// Off by default: a reactor runs what a wait woke at once. With a budget, a reactor that
    /// starts to wait keeps waiting until `budget` has passed, unless many completions or ready
    /// sockets came (32), so that one wakeup serves several requests: CPU per request bought with latency (at
    /// most the budget per request). Work that comes after a reactor has been idle for longer
    /// than the budget is run at once, so a quiet server adds no latency. It never delays a
    /// timer past its deadline, and never holds back work that was runnable before the wait
    /// (the reactor does not block then). On io_uring the kernel does it within the wait (`min_wait`,
    /// `IORING_FEAT_MIN_TIMEOUT`, Linux 6.12+); on epoll, and on older kernels, the driver
    /// naps after its wait and then collects what came. `running_backend()` says which.
    ///
    /// A park whose own submission completed something (a send the kernel finished at once)
    /// does not wait at all: the task that send woke is runnable work. So a task that awaits
    /// one send after another (a UDP echo loop) is not held back by the budget at each step.
    pub fn latency_budget(mut self, budget: Duration) -> Self {
        self.latency_budget = Some(budget);
        self
    }

    /// io_uring: switches the fast path named `name` (one of [`FAST_PATHS`](crate::FAST_PATHS))
    /// on or off, as the methods above do one by one; an unknown name is an `InvalidInput`
    /// error that lists the known ones.
    pub fn uring_fast_path(mut self, name: &str, on: bool) -> io::Result<Self> {
        self.off.switch(name, !on)?;
        Ok(self)
    }

    /// io_uring: whether a latency budget uses the kernel's `min_wait` where it has it (the
    /// default); off, the driver's nap is used, as on kernels before 6.12.
    #[doc(hidden)]
    pub fn kernel_min_wait(mut self, on: bool) -> Self {
        self.off.set("min-wait", !on);
        self
    }

    /// The longest a reactor waits in the kernel in one park, whatever the wake strategy
    /// (default: as long as it has nothing to do). `RUNTIME_MAX_PARK` overrides it.
    pub fn max_park(mut self, max: Duration) -> Self {
        self.config.max_park = Some(max);
        self
    }

    /// Pins reactor `i` to CPU `i % cpus`.
    pub fn pin_reactors(mut self, pin: bool) -> Self {
        self.config.pin_reactors = pin;
        self
    }

    /// The backend asked for, after the environment, and who asked.
    fn requested(&self) -> io::Result<(Backend, String)> {
        if let Ok(value) = std::env::var(BACKEND_ENV) {
            let backend = value
                .parse()
                .map_err(|e: io::Error| io::Error::new(e.kind(), format!("{BACKEND_ENV}: {e}")))?;
            return Ok((backend, format!("{BACKEND_ENV}={value}")));
        }
        let who = match self.backend {
            Backend::Auto => "auto",
            _ => "requested by the program",
        };
        Ok((self.backend, who.to_string()))
    }

    /// What the drivers are made with; [`URING_OFF_ENV`](crate::URING_OFF_ENV) may switch more
    /// fast paths off.
    fn driver_options(&self) -> io::Result<DriverOptions> {
        Ok(DriverOptions {
            wake: self.wake,
            ring_entries: self.ring_entries.unwrap_or(256),
            latency_budget: self.latency_budget,
            off: self.off.with_env()?,
        })
    }

    /// The backend [`build`](Builder::build) would run, and why (with how its driver is set
    /// up: which io_uring fast paths it takes), from a driver made and dropped on the calling
    /// thread.
    pub(crate) fn resolve_backend(&self) -> io::Result<BackendInfo> {
        let (requested, why) = self.requested()?;
        let options = self.driver_options()?;
        let (kind, why) = select::resolve(requested, &why, options)?;
        select::create(kind, &why, options).map(|(_, info)| info)
    }

    /// Decides the backend (trying io_uring for `Auto`) and returns the runtime to run.
    pub fn build(self) -> io::Result<Runtime> {
        let (requested, why) = self.requested()?;
        self.pinned(requested, why)
    }

    /// As [`build`](Builder::build), but on exactly `backend`, whatever the environment says.
    pub(crate) fn pinned(mut self, backend: Backend, why: String) -> io::Result<Runtime> {
        if let Ok(value) = std::env::var(MAX_PARK_ENV) {
            let max = parse_duration(&value).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{MAX_PARK_ENV}={value:?}: expected a duration such as 1ms"),
                )
            })?;
            self.config.max_park = Some(max);
        }
        self.config.wake = self.wake.notify();
        let options = self.driver_options()?;
        let (backend, why) = select::resolve(backend, &why, options)?;
        Ok(Runtime {
            backend,
            why,
            config: self.config,
            options,
        })
    }

    /// Runs `future` to completion on a new runtime, the calling thread being reactor 0.
    ///
    /// Fails, with an error naming the cause, if the requested backend cannot start (for
    /// example io_uring refused by the kernel in a build without epoll), or if a driver fails.
    pub fn try_block_on<F: Future>(self, future: F) -> io::Result<F::Output> {
        self.build()?.block_on(future)
    }

    /// As [`try_block_on`](Builder::try_block_on), but a runtime that cannot start is reported
    /// on stderr and ends the process with status 1.
    pub fn block_on<F: Future>(self, future: F) -> F::Output {
        match self.try_block_on(future) {
            Ok(output) => output,
            Err(e) => {
                eprintln!("error: the runtime could not run: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// A configured runtime: its reactors and pool run for the duration of each
/// [`block_on`](Runtime::block_on).
#[derive(Debug, Clone)]
pub struct Runtime {
    backend: BackendKind,
    why: String,
    config: RuntimeConfig,
    options: DriverOptions,
}

impl Runtime {
    /// The backend every reactor will run.
    pub fn backend_kind(&self) -> BackendKind {
        self.backend
    }

    /// Runs `future` on reactor 0 (the calling thread) with the other reactors and the pool
    /// running beside it. When it completes, every reactor and pool thread is stopped and joined
    /// and their tasks and operations cancelled before this returns.
    pub fn block_on<F: Future>(&self, future: F) -> io::Result<F::Output> {
        struct Restore(Option<BackendInfo>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|c| *c.borrow_mut() = self.0.take());
            }
        }
        let _restore = Restore(CURRENT.with(|c| c.borrow().clone()));
        let (backend, why, options) = (self.backend, self.why.clone(), self.options);
        let make_driver = move |_index: usize| {
            let (driver, info) = select::create(backend, &why, options)?;
            CURRENT.with(|c| *c.borrow_mut() = Some(info));
            Ok(driver)
        };
        // Pool threads read the backend from reactor 0, labelled before anything can run there.
        let future = async move {
            let info = CURRENT.with(|c| c.borrow().clone());
            if let (Some(info), Some(reactor)) = (info, runtime_core::current_reactor()) {
                reactor.set_label(std::sync::Arc::new(info));
            }
            future.await
        };
        runtime_core::run_runtime(&self.config, make_driver, future)
    }
}
