//! How another thread wakes a parked ring: its eventfd, or a `MSG_RING` from another ring.
//!
//! The ring keeps a `READ` of the eventfd in flight at all times; a write from any thread
//! completes it, which ends the reactor's `io_uring_enter` wait. Its CQE re-arms the read.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use io_uring::{opcode, types};
use runtime_core::sys::cvt;
use runtime_core::Unpark;

use crate::ring::with_current;
use crate::shared::RingShared;
use crate::user_data::UserData;

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

/// Wakes a ring with `IORING_OP_MSG_RING` from a thread that owns a ring of its own (another
/// reactor): no eventfd, no syscall on the spot (the message goes out with that reactor's next
/// submission). Other threads fall back to the eventfd.
pub(crate) struct MsgRingUnpark {
    target: Arc<RingShared>,
    eventfd: Arc<EventFd>,
}

impl MsgRingUnpark {
    pub(crate) fn new(target: Arc<RingShared>, eventfd: Arc<EventFd>) -> Self {
        MsgRingUnpark { target, eventfd }
    }
}

impl Unpark for MsgRingUnpark {
    fn unpark(&self) {
        let target_fd = self.target.ring_fd;
        let target_id = self.target.id;
        let sent = with_current(|ring| {
            if ring.id() == target_id {
                return false; // our own ring: nothing to wake
            }
            let ignored = UserData::Ignored.encode();
            let msg = opcode::MsgRingData::new(types::Fd(target_fd), 0, ignored, None)
                .build()
                .user_data(ignored);
            ring.push(msg);
            true
        });
        if sent != Some(true) {
            self.eventfd.unpark();
        }
    }
}
