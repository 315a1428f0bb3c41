//! `Builder`: choosing the backend and running a runtime.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::str::FromStr;

use crate::select;

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

/// The backend a runtime runs on, and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendInfo {
    backend: Backend,
    reason: String,
}

impl BackendInfo {
    pub(crate) fn new(backend: Backend, reason: String) -> Self {
        BackendInfo { backend, reason }
    }

    /// [`Backend::Uring`] or [`Backend::Epoll`]; never `Auto`.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Why this backend: who asked for it, and what was given up or fallen back from.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for BackendInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.backend, self.reason)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<BackendInfo>> = const { RefCell::new(None) };
}

/// The backend of the runtime running on the calling thread, or `None` outside a runtime.
pub fn backend() -> Option<BackendInfo> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `future` on `driver`, with `info` as what [`backend()`] reports meanwhile.
pub(crate) fn run<F: Future>(
    driver: select::DefaultDriver,
    info: BackendInfo,
    future: F,
) -> io::Result<F::Output> {
    struct Restore(Option<BackendInfo>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CURRENT.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let _restore = Restore(CURRENT.with(|c| c.borrow_mut().replace(info)));
    runtime_core::block_on(driver, future)
}

/// The environment variable that overrides the backend a program asks for.
pub const BACKEND_ENV: &str = "RUNTIME_BACKEND";

/// Configures and starts a runtime.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    backend: Backend,
}

impl Builder {
    /// A builder with the default settings: [`Backend::Auto`], overridable by `RUNTIME_BACKEND`.
    pub fn new() -> Self {
        Builder::default()
    }

    /// Asks for `backend`. `RUNTIME_BACKEND`, when set, still overrides it.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
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

    /// Runs `future` to completion on a new runtime on the calling thread.
    ///
    /// Fails, with an error naming the cause, if the requested backend cannot start (for
    /// example io_uring refused by the kernel in a build without epoll), or if the driver fails.
    pub fn try_block_on<F: Future>(self, future: F) -> io::Result<F::Output> {
        let (backend, why) = self.requested()?;
        let (driver, info) = select::create(backend, &why)?;
        run(driver, info, future)
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
