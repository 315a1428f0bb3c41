//! Which driver type the features select, and how one is created for a [`Backend`].

use std::io;

use crate::builder::{Backend, BackendInfo};

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

#[cfg(feature = "uring")]
fn uring() -> io::Result<(backend_uring::RingDriver, String)> {
    let driver = backend_uring::RingDriver::new(&backend_uring::RingConfig::default())?;
    let flags = match driver.downgrade() {
        Some(why) => why.to_string(),
        None => "ring with SINGLE_ISSUER|DEFER_TASKRUN".to_string(),
    };
    Ok((driver, flags))
}

#[cfg(feature = "epoll")]
fn epoll() -> io::Result<backend_epoll::EpollDriver> {
    backend_epoll::EpollDriver::new()
}

#[cfg(not(all(feature = "uring", feature = "epoll")))]
fn not_built(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("this build has no {name} backend (enable the `{name}` feature of `runtime`)"),
    )
}

/// Creates the driver for `backend` on the calling thread; `why` says who asked for it.
pub(crate) fn create(backend: Backend, why: &str) -> io::Result<(DefaultDriver, BackendInfo)> {
    match backend {
        Backend::Uring => {
            #[cfg(feature = "uring")]
            {
                let (driver, flags) = uring()?;
                let info = BackendInfo::new(Backend::Uring, format!("{why}; {flags}"));
                Ok((driver.into(), info))
            }
            #[cfg(not(feature = "uring"))]
            Err(not_built("uring"))
        }
        Backend::Epoll => {
            #[cfg(feature = "epoll")]
            {
                let info = BackendInfo::new(Backend::Epoll, why.to_string());
                Ok((epoll()?.into(), info))
            }
            #[cfg(not(feature = "epoll"))]
            Err(not_built("epoll"))
        }
        Backend::Auto => {
            #[cfg(feature = "uring")]
            let uring_refused = match uring() {
                Ok((driver, flags)) => {
                    let info = BackendInfo::new(Backend::Uring, format!("{why}; {flags}"));
                    return Ok((driver.into(), info));
                }
                Err(e) => e,
            };
            #[cfg(all(feature = "uring", not(feature = "epoll")))]
            return Err(uring_refused);
            #[cfg(feature = "epoll")]
            {
                #[cfg(feature = "uring")]
                let why = format!("{why}; io_uring refused: {uring_refused}; fell back to epoll");
                let info = BackendInfo::new(Backend::Epoll, why.to_string());
                Ok((epoll()?.into(), info))
            }
        }
    }
}
