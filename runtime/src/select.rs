//! Which driver type the features select, and how one is created for a [`Backend`].

use std::io;

use crate::wake::WakeStrategy;

use crate::builder::{Backend, BackendInfo, BackendKind};
use crate::fast_paths::SwitchedOff;

#[cfg(all(feature = "uring", feature = "epoll"))]
mod types {
    /// The driver of this build: chosen at startup between io_uring and epoll.
    pub type DefaultDriver = crate::auto::AutoDriver;
    /// The registered-fd type of [`DefaultDriver`].
    pub type DefaultSource = crate::auto::AutoSource;
}

#[cfg(all(feature = "uring", not(feature = "epoll")))]
mod types {
    /// The driver of this build: io_uring only.
    pub type DefaultDriver = backend_uring::RingDriver;
    /// The registered-fd type of [`DefaultDriver`].
    pub type DefaultSource = backend_uring::RingSource;
}

#[cfg(all(feature = "epoll", not(feature = "uring")))]
mod types {
    /// The driver of this build: epoll only.
    pub type DefaultDriver = backend_epoll::EpollDriver;
    /// The registered-fd type of [`DefaultDriver`].
    pub type DefaultSource = backend_epoll::EpollSource;
}

pub use types::{DefaultDriver, DefaultSource};

/// What a driver is made with: the wake strategy, and the io_uring ring size.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "uring"), allow(dead_code))]
pub(crate) struct DriverOptions {
    pub(crate) wake: WakeStrategy,
    pub(crate) ring_entries: u32,
    pub(crate) latency_budget: Option<std::time::Duration>,
    /// The io_uring fast paths switched off.
    pub(crate) off: SwitchedOff,
}

#[cfg(feature = "uring")]
fn uring(options: DriverOptions) -> io::Result<backend_uring::RingDriver> {
    let config = backend_uring::RingConfig {
        wake: options.wake.ring_wake(),
        entries: options.ring_entries,
        multishot_receive: options.off.on("multishot-receive"),
        late_receive: options.off.on("late-receive"),
        stream_buffers: match (
            options.off.on("incremental-buffers"),
            options.off.on("receive-bundle"),
        ) {
            (true, _) => backend_uring::StreamBuffers::Incremental,
            (false, true) => backend_uring::StreamBuffers::Bundles,
            (false, false) => backend_uring::StreamBuffers::Plain,
        },
        zero_copy_send: options.off.on("zero-copy-send"),
        latency_budget: options.latency_budget,
        kernel_min_wait: options.off.on("min-wait"),
        registered_ring_fd: options.off.on("registered-ring-fd"),
        no_sqarray: options.off.on("no-sqarray"),
        direct_descriptors: options.off.on("direct-descriptors"),
    };
    backend_uring::RingDriver::new(&config)
}

#[cfg(feature = "epoll")]
fn epoll(options: DriverOptions) -> io::Result<backend_epoll::EpollDriver> {
    Ok(backend_epoll::EpollDriver::new()?.with_latency_budget(options.latency_budget))
}

#[cfg(not(all(feature = "uring", feature = "epoll")))]
fn not_built(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("this build has no {name} backend (enable the `{name}` feature of `runtime`)"),
    )
}

/// Decides between the backends once, on the calling thread, so that every reactor of a runtime
/// runs the same one. `Auto` tries io_uring and falls back to epoll; `why` says who asked.
pub(crate) fn resolve(
    backend: Backend,
    why: &str,
    options: DriverOptions,
) -> io::Result<(BackendKind, String)> {
    match backend {
        Backend::Auto => {
            #[cfg(feature = "uring")]
            let refused = match uring(options) {
                Ok(_) => return Ok((BackendKind::Uring, why.to_string())),
                Err(e) => e,
            };
            #[cfg(all(feature = "uring", not(feature = "epoll")))]
            return Err(refused);
            #[cfg(feature = "epoll")]
            {
                #[cfg(feature = "uring")]
                let why = format!("{why}; io_uring refused: {refused}; fell back to epoll");
                let _ = options;
                Ok((BackendKind::Epoll, why.to_string()))
            }
        }
        Backend::Uring => {
            // Asked for by name: a kernel that refuses it is an error now, with its reason,
            // rather than a failure on the reactor thread later.
            #[cfg(feature = "uring")]
            uring(options)?;
            Ok((BackendKind::Uring, why.to_string()))
        }
        Backend::Epoll => Ok((BackendKind::Epoll, why.to_string())),
    }
}

/// Creates the driver for a resolved `backend` on the calling thread.
// With one backend built, the driver is `DefaultDriver` itself and `into` converts nothing.
#[cfg_attr(
    not(all(feature = "uring", feature = "epoll")),
    allow(clippy::useless_conversion)
)]
pub(crate) fn create(
    backend: BackendKind,
    why: &str,
    options: DriverOptions,
) -> io::Result<(DefaultDriver, BackendInfo)> {
    match backend {
        BackendKind::Uring => {
            #[cfg(feature = "uring")]
            {
                let driver = uring(options)?;
                let info = BackendInfo::new(
                    BackendKind::Uring,
                    format!("{why}; {}", driver.description()),
                );
                Ok((driver.into(), info))
            }
            #[cfg(not(feature = "uring"))]
            {
                let _ = (why, options);
                Err(not_built("uring"))
            }
        }
        BackendKind::Epoll => {
            #[cfg(feature = "epoll")]
            {
                let mut reason = why.to_string();
                if let Some(budget) = options.latency_budget.filter(|b| !b.is_zero()) {
                    reason += &format!("; latency budget {budget:?} by the driver's nap");
                }
                let info = BackendInfo::new(BackendKind::Epoll, reason);
                Ok((epoll(options)?.into(), info))
            }
            #[cfg(not(feature = "epoll"))]
            {
                let _ = (why, options);
                Err(not_built("epoll"))
            }
        }
    }
}
