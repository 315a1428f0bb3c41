//! The eventfd that wakes a parked ring from another thread.
//!
//! The ring keeps a `READ` of the eventfd in flight at all times; a write from any thread
//! completes it, which ends the reactor's `io_uring_enter` wait. Its CQE re-arms the read.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use runtime_core::sys::cvt;
use runtime_core::Unpark;

/// Writes the reactor's eventfd.
#[derive(Debug)]
pub(crate) struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub(crate) fn new() -> io::Result<Arc<Self>> {
        // SAFETY: plain integer arguments.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `eventfd` just returned this fd and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Arc::new(EventFd { fd }))
    }

    pub(crate) fn as_raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

impl Unpark for EventFd {
    fn unpark(&self) {
        let one: u64 = 1;
        // EAGAIN means the counter is saturated, so a wake is pending anyway.
        // SAFETY: writes the 8 bytes of a live u64 to our own eventfd.
        let _ = cvt(unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&one as *const u64).cast(),
                std::mem::size_of::<u64>(),
            )
        });
    }
}
