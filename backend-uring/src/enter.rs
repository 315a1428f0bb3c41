//! Entering the ring: by its fd, or by the index it was registered under
//! (`IORING_REGISTER_RING_FDS`, Linux 5.18+), which spares the kernel an fd-table lookup (and
//! the file reference it takes) on every `io_uring_enter`.
//!
//! A registered index belongs to the thread that registered it. The reactor thread registers
//! its ring when it sets it up and is the only thread that enters it (`SINGLE_ISSUER`).

use std::io;
use std::os::fd::RawFd;

use io_uring::EnterFlags;

/// `io_uring_register` opcodes (from `<linux/io_uring.h>`).
const IORING_REGISTER_RING_FDS: libc::c_uint = 20;
const IORING_UNREGISTER_RING_FDS: libc::c_uint = 21;

/// `struct io_uring_rsrc_update`.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

/// How the reactor thread names its ring to `io_uring_enter`.
#[derive(Debug)]
pub(crate) struct EnterFd {
    fd: RawFd,
    /// The index the ring is registered under, on this thread.
    registered: Option<u32>,
    /// Not `Send`: the index means something only on the thread that registered it (and its
    /// drop unregisters from the calling thread's table).
    _thread: std::marker::PhantomData<*const ()>,
}

impl EnterFd {
    /// Names the ring `fd`; with `register`, registers it first (falling back to the fd where
    /// the kernel refuses, before 5.18), and says which in the returned description.
    pub(crate) fn new(fd: RawFd, register: bool) -> (Self, Option<String>) {
        let mut enter = EnterFd {
            fd,
            registered: None,
            _thread: std::marker::PhantomData,
        };
        if !register {
            return (enter, None);
        }
        let mut update = RsrcUpdate {
            offset: u32::MAX, // any free slot
            resv: 0,
            data: fd as u64,
        };
        // SAFETY: `update` is one live `io_uring_rsrc_update` for the kernel to read and fill.
        let res = unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                fd,
                IORING_REGISTER_RING_FDS,
                &mut update as *mut RsrcUpdate,
                1,
            )
        };
        if res == 1 {
            enter.registered = Some(update.offset);
            return (enter, Some("registered ring fd".into()));
        }
        let e = io::Error::last_os_error();
        (enter, Some(format!("ring fd not registered ({e}; 5.18+)")))
    }

    /// The index the ring is registered under, if it is.
    pub(crate) fn registered(&self) -> Option<u32> {
        self.registered
    }

    /// `io_uring_enter(2)`, by the registered index where there is one.
    ///
    /// # Safety
    /// `arg` must be what `flags` announce: with `IORING_ENTER_EXT_ARG`, an
    /// `io_uring_getevents_arg` (whose pointers are alive for the call); otherwise `None` or a
    /// signal mask.
    pub(crate) unsafe fn enter<T>(
        &self,
        to_submit: u32,
        min_complete: u32,
        flags: u32,
        arg: Option<&T>,
    ) -> io::Result<usize> {
        let (fd, flags) = match self.registered {
            Some(index) => (index as RawFd, flags | EnterFlags::REGISTERED_RING.bits()),
            None => (self.fd, flags),
        };
        let (arg, size) = match arg {
            Some(arg) => (arg as *const T as *const libc::c_void, size_of::<T>()),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: the caller's contract on `arg` and `flags`; `fd` is the ring's fd, or its index
        // registered on this thread (the reactor thread, the only one that enters it).
        let res = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                fd,
                to_submit,
                min_complete,
                flags,
                arg,
                size,
            )
        };
        if res < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res as usize)
        }
    }
}

impl Drop for EnterFd {
    /// Unregisters the index: the registration holds a reference to the ring's file, which
    /// would otherwise keep the ring alive until the thread exits.
    fn drop(&mut self) {
        if let Some(index) = self.registered.take() {
            let update = RsrcUpdate {
                offset: index,
                resv: 0,
                data: 0,
            };
            // SAFETY: `update` is one live `io_uring_rsrc_update` for the kernel to read.
            unsafe {
                libc::syscall(
                    libc::SYS_io_uring_register,
                    self.fd,
                    IORING_UNREGISTER_RING_FDS,
                    &update as *const RsrcUpdate,
                    1,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::EnterFd;

    /// A registered ring is entered by its index, with the flag that says so.
    #[test]
    fn a_registered_ring_is_entered_by_its_index() {
        let ring = match io_uring::IoUring::new(8) {
            Ok(r) => r,
            Err(e) => return eprintln!("skipped: this kernel refuses io_uring: {e}"),
        };
        let (enter, why) = EnterFd::new(ring.as_raw_fd(), true);
        let Some(index) = enter.registered else {
            return eprintln!("skipped: {}", why.unwrap_or_default());
        };
        assert_ne!(index as i32, ring.as_raw_fd(), "an index, not the fd");
        // SAFETY: no argument is passed and no flag announces one.
        let res = unsafe { enter.enter::<libc::sigset_t>(0, 0, 1, None) };
        assert!(res.is_ok(), "entering by the index failed: {res:?}");
        // The same call with the index as if it were an fd fails: the flag is what made it work.
        let plain = EnterFd {
            fd: index as i32,
            registered: None,
            _thread: std::marker::PhantomData,
        };
        // SAFETY: as above.
        let res = unsafe { plain.enter::<libc::sigset_t>(0, 0, 1, None) };
        assert!(res.is_err(), "the index is not an io_uring fd");
    }
}
