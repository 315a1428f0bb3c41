//! Support for the code `#[runtime::main]` and `#[runtime::test]` generate. Not public API.

use std::future::Future;
use std::time::Duration;

use crate::builder::{Backend, Builder};

/// What a test body may return, and what a skipped test returns.
pub trait TestOutput {
    /// The value of a test that was skipped.
    fn skipped() -> Self;
}

impl TestOutput for () {
    fn skipped() -> Self {}
}

impl<E> TestOutput for Result<(), E> {
    fn skipped() -> Self {
        Ok(())
    }
}

/// How long a test may run before the watchdog ends the process.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one test body on `backend`, under a watchdog, on a runtime shaped by `builder`
/// (one reactor and one pool thread unless the test asks otherwise). A backend this kernel
/// refuses makes the test print why and skip.
pub fn run_test<F>(
    backend: Backend,
    name: &str,
    timeout: Duration,
    builder: Builder,
    body: F,
) -> F::Output
where
    F: Future,
    F::Output: TestOutput,
{
    let (done, watch) = std::sync::mpsc::channel::<()>();
    let label = format!("{name} [{backend}]");
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(timeout) {
            eprintln!("test {label} did not finish within {timeout:?}; aborting");
            std::process::abort();
        }
    });
    let outcome = match builder.pinned(backend, "pinned by the test".to_string()) {
        Ok(rt) => rt.block_on(body),
        // Only io_uring may be refused by a kernel that runs tests at all.
        Err(e) if backend == Backend::Uring => {
            eprintln!("skipped {name} on {backend}: this kernel refuses it: {e}");
            Ok(F::Output::skipped())
        }
        Err(e) => Err(e),
    };
    drop(done);
    let _ = watchdog.join();
    outcome.unwrap_or_else(|e| panic!("the {backend} driver failed under test {name}: {e}"))
}

/// The runtime a test gets unless it asks for another shape.
pub fn test_builder() -> Builder {
    Builder::new().reactors(1).pool_threads(1)
}

/// Runs the body of `#[runtime::main]`.
pub fn run_main<F: Future>(builder: Builder, body: F) -> F::Output {
    builder.block_on(body)
}

/// `#[test]` functions for each backend compiled in: the macros below expand to their input
/// when the backend is built, and to nothing otherwise.
#[cfg(feature = "uring")]
#[macro_export]
#[doc(hidden)]
macro_rules! __if_uring {
    ($($item:tt)*) => { $($item)* };
}

#[cfg(not(feature = "uring"))]
#[macro_export]
#[doc(hidden)]
macro_rules! __if_uring {
    ($($item:tt)*) => {};
}

#[cfg(feature = "epoll")]
#[macro_export]
#[doc(hidden)]
macro_rules! __if_epoll {
    ($($item:tt)*) => { $($item)* };
}

#[cfg(not(feature = "epoll"))]
#[macro_export]
#[doc(hidden)]
macro_rules! __if_epoll {
    ($($item:tt)*) => {};
}
