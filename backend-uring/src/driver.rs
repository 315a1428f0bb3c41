//! The ring driver: owns one io_uring, submits and reaps for one reactor.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use runtime_core::{Driver, EnterGuard, Metrics, ReactorHandle, Unpark, WakeStrategy};

use crate::multishot::{self, is_multishot};
use crate::op_table::OpTable;
use crate::provided::{ProvidedBuffers, BUFFER_GROUP};
use crate::remote::{is_remote, RemoteOp};
use crate::setup::{self, RingConfig};
use crate::shared::{RingPtr, RingShared};
use crate::source::RingSource;
use crate::wake::{EventFd, MsgRingUnpark};

/// User data of the eventfd read that wakes the ring.
const WAKE_USER_DATA: u64 = u64::MAX;
/// User data of fire-and-forget SQEs (cancels, `MSG_RING` wakes) whose CQEs are ignored.
pub(crate) const IGNORED_USER_DATA: u64 = u64::MAX - 1;
/// User data of the `CLOSE` of a dropped socket (counted, so shutdown waits for them).
const CLOSE_USER_DATA: u64 = u64::MAX - 2;
/// User data at or above this is reserved (never an op table key or a remote op pointer).
pub(crate) const FIRST_RESERVED_USER_DATA: u64 = CLOSE_USER_DATA;

/// How long dropping a driver waits, in total, for cancelled operations to complete.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The reactor-thread state of one ring, reached by sources through the thread-local current.
pub(crate) struct RingInner {
    pub(crate) shared: Arc<RingShared>,
    /// # Invariant
    /// The SQ and CQ are touched only by the reactor thread, except in `SqPoll` mode, where
    /// every SQ push (the reactor's too) holds `shared.sq`'s lock.
    ring: IoUring,
    sqpoll: bool,
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
    /// `CLOSE`s pushed whose CQE has not come yet.
    closes_in_flight: Cell<usize>,
    /// Multishot receives armed whose final CQE has not come yet.
    multishots_in_flight: Cell<usize>,
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
    pub(crate) fn id(&self) -> usize {
        self.shared.id
    }

    fn with_metrics(&self, f: impl FnOnce(&Metrics)) {
        if let Some(r) = self.shared.reactor.get() {
            f(r.metrics());
        }
    }

    /// Queues an SQE for the next submission; submits early only if the SQ is full.
    pub(crate) fn push(&self, entry: squeue::Entry) {
        let _sq_lock = self.sqpoll.then(|| self.shared.sq.lock());
        loop {
            // SAFETY: the SQ is ours alone here (the `ring` invariant: reactor thread, or the
            // `SqPoll` lock held just above).
            let mut sq = unsafe { self.ring.submission_shared() };
            // SAFETY: every pointer in an SQE pushed here points into memory kept alive until
            // its CQE: the operation's own memory (the `OpCode` invariant, then the op table or
            // a `RemoteOp` after the future drops) or the driver's wake buffer (its invariant).
            if unsafe { sq.push(&entry) }.is_ok() {
                self.with_metrics(|m| m.sqes_submitted.add_local(1));
                return;
            }
            drop(sq);
            // The SQ is full: make room by submitting what is queued (no wait). If the kernel
            // refuses because the CQ is full, reap first.
            match self.ring.submit() {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.reap(),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => panic!("io_uring_enter failed while the submission queue was full: {e}"),
            }
        }
    }

    /// Closes `fd` through the ring, with the next submission. The fd must not be used again.
    pub(crate) fn close(&self, fd: std::os::fd::RawFd) {
        self.closes_in_flight.set(self.closes_in_flight.get() + 1);
        self.push(
            opcode::Close::new(types::Fd(fd))
                .build()
                .user_data(CLOSE_USER_DATA),
        );
    }

    /// Arms a socket's multishot receive (made by `RecvQueue::poll_read`).
    pub(crate) fn push_multishot(&self, entry: squeue::Entry) {
        self.multishots_in_flight
            .set(self.multishots_in_flight.get() + 1);
        self.push(entry);
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

    /// Pushes the SQEs other threads handed over.
    fn push_remote(&self) {
        for entry in self.shared.take_remote() {
            self.push(entry);
        }
    }

    /// Hands one CQE to its operation. Returns `true` for the wake read's CQE.
    fn dispatch(&self, cqe: &cqueue::Entry, ops: &mut OpTable) -> bool {
        let (user_data, result) = (cqe.user_data(), cqe.result());
        match user_data {
            WAKE_USER_DATA => return true,
            IGNORED_USER_DATA => {}
            CLOSE_USER_DATA => self.closes_in_flight.set(self.closes_in_flight.get() - 1),
            ud if is_remote(ud) => {
                self.shared.count_remote_done();
                // SAFETY: tagged user data other than the reserved values is only ever made by
                // `RemoteOp::into_user_data` for an SQE, whose single CQE this is.
                unsafe { RemoteOp::from_user_data(ud) }.complete(result);
            }
            ud if is_multishot(ud) => {
                // SAFETY: multishot user data is only made by `RecvQueue::poll_read`, and a
                // receive's CQEs end with the one that has no `F_MORE` (handled once here).
                let done = unsafe { multishot::complete(ud, result, cqe.flags()) };
                if done.finished {
                    self.multishots_in_flight
                        .set(self.multishots_in_flight.get() - 1);
                }
                if let Some(cancel) = done.cancel {
                    self.push(cancel.user_data(IGNORED_USER_DATA));
                }
            }
            key => ops.complete(key as usize, result),
        }
        false
    }

    /// Takes every CQE off the completion queue and hands it to its operation.
    fn reap(&self) {
        let mut rearm = false;
        let mut reaped = 0;
        {
            let mut ops = self.ops.borrow_mut();
            // SAFETY: only the reactor thread touches the CQ (the `ring` invariant).
            for cqe in unsafe { self.ring.completion_shared() } {
                reaped += 1;
                rearm |= self.dispatch(&cqe, &mut ops);
            }
        }
        self.with_metrics(|m| m.cqes_reaped.add_local(reaped));
        if rearm {
            self.wake_armed.set(false);
            self.arm_wake();
        }
    }

    /// Submits what is queued and waits for at least one completion, at most `timeout`.
    fn enter(&self, timeout: Option<Duration>) -> io::Result<()> {
        let res = match timeout {
            Some(t) if t.is_zero() => {
                // SAFETY: reading the SQ's state from the reactor thread (the `ring` invariant).
                let sq = unsafe { self.ring.submission_shared() };
                let idle =
                    sq.is_empty() && !(self.taskrun_flag && sq.taskrun()) && !sq.cq_overflow();
                drop(sq);
                if idle {
                    return Ok(());
                }
                self.with_metrics(|m| m.driver_waits.add_local(1));
                self.ring.submit()
            }
            None => {
                self.with_metrics(|m| m.driver_waits.add_local(1));
                self.ring.submit_and_wait(1)
            }
            Some(t) => {
                self.with_metrics(|m| m.driver_waits.add_local(1));
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
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
    unpark: Arc<dyn Unpark>,
    description: String,
}

impl std::fmt::Debug for RingDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingDriver")
            .field("id", &self.inner.id())
            .field("description", &self.description)
            .finish()
    }
}

impl RingDriver {
    /// Sets up a ring on the calling thread, which must be the thread that runs it
    /// (`SINGLE_ISSUER`). Fails with an error naming the cause where io_uring is refused.
    pub fn new(config: &RingConfig) -> io::Result<Self> {
        let built = setup::build(config)?;
        let eventfd = EventFd::new()?;
        let id = NEXT_RING_ID.fetch_add(1, Ordering::Relaxed);
        // Kernels before 5.19 have no buffer rings: reads then use one-shot receives only.
        let buffers = ProvidedBuffers::register(&built.ring).ok().map(Arc::new);
        let shared = Arc::new(RingShared::new(id, built.ring.as_raw_fd(), buffers));
        let sqpoll = built.ring.params().is_setup_sqpoll();
        let inner = Rc::new(RingInner {
            shared: shared.clone(),
            ring: built.ring,
            sqpoll,
            ops: RefCell::new(OpTable::default()),
            taskrun_flag: built.taskrun_flag,
            eventfd: eventfd.clone(),
            wake_buf: Box::into_raw(Box::new(0u64)),
            wake_armed: Cell::new(false),
            closes_in_flight: Cell::new(0),
            multishots_in_flight: Cell::new(0),
        });
        if sqpoll {
            *shared.sq.lock() = Some(RingPtr(&inner.ring));
        }
        inner.arm_wake();
        let unpark: Arc<dyn Unpark> = match config.wake {
            WakeStrategy::MsgRing => Arc::new(MsgRingUnpark::new(shared.clone(), eventfd)),
            _ => eventfd,
        };
        Ok(RingDriver {
            inner,
            unpark,
            description: built.description,
        })
    }

    /// How the ring was set up, and what was given up (flags the kernel refused), if anything.
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl Driver for RingDriver {
    type Source = RingSource;

    fn name(&self) -> &'static str {
        "uring"
    }

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.inner.push_remote();
        self.inner.enter(timeout)?;
        self.inner.reap();
        Ok(())
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.unpark.clone()
    }

    fn enter(&self, reactor: &ReactorHandle) -> EnterGuard {
        let _ = self.inner.shared.reactor.set(reactor.clone());
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.inner.clone()));
        EnterGuard::new(move || CURRENT.with(|c| *c.borrow_mut() = prev))
    }
}

impl Drop for RingDriver {
    /// Cancels what is in flight and waits (boundedly) for the kernel to let go of it; memory the
    /// kernel still holds after that is leaked rather than freed.
    fn drop(&mut self) {
        let inner = &self.inner;
        // Refuse further handovers; what was queued but never pushed is cancelled here.
        for entry in inner.shared.close() {
            if is_remote(entry.get_user_data()) {
                inner.shared.count_remote_done();
            }
            RemoteOp::fail_unsubmitted(&entry);
        }
        for key in inner.ops.borrow().in_flight() {
            inner.push(
                opcode::AsyncCancel::new(key as u64)
                    .build()
                    .user_data(IGNORED_USER_DATA),
            );
        }
        // Everything else (the wake read, handed-over operations); kernels before 6.0 refuse
        // this, and then whatever is left is leaked after the timeout below.
        inner.push(
            opcode::AsyncCancel2::new(types::CancelBuilder::any())
                .build()
                .user_data(IGNORED_USER_DATA),
        );
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        loop {
            let pending = !inner.ops.borrow().in_flight().is_empty()
                || inner.shared.remote_in_flight() > 0
                || inner.closes_in_flight.get() > 0
                || inner.multishots_in_flight.get() > 0
                || inner.wake_armed.get();
            if !pending {
                break;
            }
            let now = Instant::now();
            if now >= deadline || inner.enter(Some(deadline - now)).is_err() {
                break;
            }
            let mut ops = inner.ops.borrow_mut();
            // SAFETY: only the reactor thread touches the CQ (the `ring` invariant).
            for cqe in unsafe { inner.ring.completion_shared() } {
                if inner.dispatch(&cqe, &mut ops) {
                    inner.wake_armed.set(false); // cancelled: not re-armed any more
                }
            }
        }
        inner.ops.borrow_mut().leak_all();
        if let Some(buffers) = &inner.shared.buffers {
            if inner.multishots_in_flight.get() > 0 {
                // A receive the kernel still holds may write into the buffers: keep them.
                std::mem::forget(buffers.clone());
            } else {
                let _ = inner.ring.submitter().unregister_buf_ring(BUFFER_GROUP);
            }
        }
        if !inner.wake_armed.get() {
            // SAFETY: the buffer came from `Box::into_raw` and no eventfd read is in flight
            // (`wake_buf`'s invariant).
            drop(unsafe { Box::from_raw(inner.wake_buf) });
        }
    }
}
