//! The ring driver: owns one io_uring, submits and reaps for one reactor.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{opcode, squeue, types, IoUring};
use runtime_core::{Driver, EnterGuard, Unpark};

use crate::op_table::OpTable;
use crate::setup::{self, RingConfig};
use crate::source::RingSource;
use crate::wake::EventFd;

/// User data of the eventfd read that wakes the ring.
const WAKE_USER_DATA: u64 = u64::MAX;
/// User data of fire-and-forget SQEs (cancels, closes) whose CQEs are ignored.
pub(crate) const IGNORED_USER_DATA: u64 = u64::MAX - 1;

/// How long dropping a driver waits, in total, for cancelled operations to complete.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The reactor-thread state of one ring, reached by sources through the thread-local current.
pub(crate) struct RingInner {
    /// Identifies the ring, so a source can tell its own reactor from another.
    pub(crate) id: usize,
    ring: RefCell<IoUring>,
    pub(crate) ops: RefCell<OpTable>,
    taskrun_flag: bool,
    eventfd: Arc<EventFd>,
    /// The 8 bytes the eventfd read lands in.
    ///
    /// # Invariant
    /// Allocated by `Box::into_raw` in `RingDriver::new`, written only by the kernel, and freed
    /// only in `RingDriver::drop` once no eventfd read is in flight.
    wake_buf: *mut u64,
    wake_armed: Cell<bool>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<RingInner>>> = const { RefCell::new(None) };
}

/// Runs `f` with the ring entered on the calling thread, if any.
pub(crate) fn with_current<R>(f: impl FnOnce(&RingInner) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(|ring| f(ring)))
        .ok()
        .flatten()
}

/// Whether a ring driver is entered on the calling thread.
pub fn is_current() -> bool {
    with_current(|_| ()).is_some()
}

static NEXT_RING_ID: AtomicUsize = AtomicUsize::new(1);

impl RingInner {
    /// Queues an SQE for the next submission; submits early only if the SQ is full.
    pub(crate) fn push(&self, entry: squeue::Entry) {
        let mut ring = self.ring.borrow_mut();
        loop {
            // SAFETY: every pointer in an SQE pushed here points into memory kept alive until its
            // CQE: either the operation's own memory (the `OpCode` invariant, with the op table
            // holding it after the future drops) or the driver's wake buffer (its invariant).
            if unsafe { ring.submission().push(&entry) }.is_ok() {
                return;
            }
            // The SQ is full: make room by submitting what is queued (no wait). If the kernel
            // refuses because the CQ is full, reap first.
            if let Err(e) = ring.submit() {
                if e.raw_os_error() == Some(libc::EBUSY) {
                    drop(ring);
                    self.reap();
                    ring = self.ring.borrow_mut();
                } else if e.raw_os_error() != Some(libc::EINTR) {
                    panic!("io_uring_enter failed while the submission queue was full: {e}");
                }
            }
        }
    }

    fn arm_wake(&self) {
        let entry = opcode::Read::new(
            types::Fd(self.eventfd.as_raw_fd()),
            self.wake_buf.cast::<u8>(),
            std::mem::size_of::<u64>() as u32,
        )
        .build()
        .user_data(WAKE_USER_DATA);
        self.push(entry);
        self.wake_armed.set(true);
    }

    /// Takes every CQE off the completion queue and hands it to its operation.
    fn reap(&self) {
        let mut rearm = false;
        {
            let mut ring = self.ring.borrow_mut();
            let mut ops = self.ops.borrow_mut();
            for cqe in ring.completion() {
                match cqe.user_data() {
                    WAKE_USER_DATA => rearm = true,
                    IGNORED_USER_DATA => {}
                    key => ops.complete(key as usize, cqe.result()),
                }
            }
        }
        if rearm {
            self.wake_armed.set(false);
            self.arm_wake();
        }
    }

    /// Submits what is queued and waits for at least one completion, at most `timeout`.
    fn enter(&self, timeout: Option<Duration>) -> io::Result<()> {
        let mut ring = self.ring.borrow_mut();
        let res = match timeout {
            Some(t) if t.is_zero() => {
                let sq = ring.submission();
                let idle =
                    sq.is_empty() && !(self.taskrun_flag && sq.taskrun()) && !sq.cq_overflow();
                drop(sq);
                if idle {
                    return Ok(());
                }
                ring.submit()
            }
            None => ring.submit_and_wait(1),
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                ring.submitter().submit_with_args(1, &args)
            }
        };
        match res {
            Ok(_) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => Ok(()),
                _ => Err(e),
            },
        }
    }
}

/// An io_uring driver for one reactor thread.
pub struct RingDriver {
    inner: Rc<RingInner>,
    downgrade: Option<String>,
}

impl std::fmt::Debug for RingDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingDriver")
            .field("id", &self.inner.id)
            .field("downgrade", &self.downgrade)
            .finish()
    }
}

impl RingDriver {
    /// Sets up a ring on the calling thread, which must be the thread that runs it
    /// (`SINGLE_ISSUER`). Fails with an error naming the cause where io_uring is refused.
    pub fn new(config: &RingConfig) -> io::Result<Self> {
        let built = setup::build(config)?;
        let eventfd = EventFd::new()?;
        let inner = Rc::new(RingInner {
            id: NEXT_RING_ID.fetch_add(1, Ordering::Relaxed),
            ring: RefCell::new(built.ring),
            ops: RefCell::new(OpTable::default()),
            taskrun_flag: built.taskrun_flag,
            eventfd,
            wake_buf: Box::into_raw(Box::new(0u64)),
            wake_armed: Cell::new(false),
        });
        inner.arm_wake();
        Ok(RingDriver {
            inner,
            downgrade: built.downgrade,
        })
    }

    /// Why the ring runs without `SINGLE_ISSUER | DEFER_TASKRUN`, if it does.
    pub fn downgrade(&self) -> Option<&str> {
        self.downgrade.as_deref()
    }
}

impl Driver for RingDriver {
    type Source = RingSource;

    fn name(&self) -> &'static str {
        "uring"
    }

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.enter(timeout)?;
        self.inner.reap();
        Ok(())
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.inner.eventfd.clone()
    }

    fn enter(&self) -> EnterGuard {
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.inner.clone()));
        EnterGuard::new(move || CURRENT.with(|c| *c.borrow_mut() = prev))
    }
}

impl Drop for RingDriver {
    /// Cancels what is in flight and waits (boundedly) for the kernel to let go of it; memory the
    /// kernel still holds after that is leaked rather than freed.
    fn drop(&mut self) {
        let inner = &self.inner;
        let in_flight = inner.ops.borrow().in_flight();
        for key in in_flight {
            inner.push(
                opcode::AsyncCancel::new(key as u64)
                    .build()
                    .user_data(IGNORED_USER_DATA),
            );
        }
        inner.push(
            opcode::AsyncCancel::new(WAKE_USER_DATA)
                .build()
                .user_data(IGNORED_USER_DATA),
        );
        // The wake read completes (cancelled) without re-arming from here on.
        let deadline = std::time::Instant::now() + DRAIN_TIMEOUT;
        loop {
            let wake_pending = inner.wake_armed.get();
            if inner.ops.borrow().in_flight().is_empty() && !wake_pending {
                break;
            }
            let now = std::time::Instant::now();
            if now >= deadline || inner.enter(Some(deadline - now)).is_err() {
                break;
            }
            let mut ring = inner.ring.borrow_mut();
            let mut ops = inner.ops.borrow_mut();
            for cqe in ring.completion() {
                match cqe.user_data() {
                    WAKE_USER_DATA => inner.wake_armed.set(false),
                    IGNORED_USER_DATA => {}
                    key => ops.complete(key as usize, cqe.result()),
                }
            }
        }
        inner.ops.borrow_mut().leak_all();
        if !inner.wake_armed.get() {
            // SAFETY: the buffer came from `Box::into_raw` and no eventfd read is in flight
            // (`wake_buf`'s invariant).
            drop(unsafe { Box::from_raw(inner.wake_buf) });
        }
    }
}
