//! The Driver contract: what an I/O backend must provide to sit under the executor.
//!
//! The model is completion-based: an operation ([`OpCode`]) is a value naming what to do and the
//! memory to do it with; polling it drives it until the kernel reports a result. A readiness
//! backend implements the same contract by waiting for readiness and then making the syscall
//! itself.
//!
//! There are two halves, as in tokio's Driver/Handle split:
//!
//! * [`Driver`] is owned by exactly one reactor thread. The executor calls [`Driver::park`] once
//!   per loop turn and never from anywhere else.
//! * [`Source`] is one registered file descriptor. It is `Send + Sync` and is what sockets hold;
//!   every operation on the fd goes through it.

use std::any::Any;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::lent::Lent;
use crate::op::OpCode;
use crate::scheduler::ReactorHandle;

/// An I/O driver owned by one reactor thread.
///
/// # Contract
///
/// * [`park`](Driver::park) submits everything queued since the last call (one `io_uring_enter`
///   or `epoll_wait` per call, never one per operation), then waits until an operation completes,
///   an fd becomes ready, the [`Unpark`] handle is used, or `timeout` passes, whichever is first.
///   `Some(Duration::ZERO)` must not block. It wakes the waker of every operation it saw finish.
///   It may return early for no reason; it must not return `Err` for `EINTR` (a spurious early
///   return is the right answer to a signal). A driver made with a latency budget
///   ([`LatencyBudget`](crate::LatencyBudget)) applies it here, in a park that may block: a
///   wait that brought little work goes on until the budget has passed since it began (never
///   past `timeout`); work already there when the park began (a send the kernel finished inside
///   the submission) ends it at once.
/// * [`unparker`](Driver::unparker) returns a handle that, from any thread, makes a current or
///   the next `park` return promptly. Deciding *whether* a wake is needed (the reactor may be
///   awake) is the executor's job, not the driver's: `unpark` always wakes.
/// * [`enter`](Driver::enter) makes this driver the calling thread's current one until the guard
///   drops, so that [`Source::new`] can register with it.
/// * Dropping the driver must not free any memory the kernel may still write: operations still in
///   flight are cancelled and their buffers kept (or leaked) until the kernel lets go of them.
pub trait Driver: 'static {
    /// The registered-fd type of this driver.
    type Source: Source;

    /// Short lowercase name of the backend (`"uring"`, `"epoll"`).
    fn name(&self) -> &'static str;

    /// Submits queued work and waits for completions, readiness, an unpark or the timeout.
    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()>;

    /// A handle that wakes this driver from any thread.
    fn unparker(&self) -> Arc<dyn Unpark>;

    /// Installs this driver as the calling thread's current driver until the guard drops.
    /// `reactor` is the reactor that runs it: its counters, and how to wake it.
    fn enter(&self, reactor: &ReactorHandle) -> EnterGuard;
}

/// Wakes a parked driver from any thread.
pub trait Unpark: Send + Sync + 'static {
    /// Makes the driver's current or next `park` return promptly.
    fn unpark(&self);
}

/// Restores the previous current driver when dropped; returned by [`Driver::enter`].
#[must_use = "the driver stays current only while the guard lives"]
pub struct EnterGuard {
    exit: Option<Box<dyn FnOnce()>>,
}

impl EnterGuard {
    /// A guard that runs `exit` when dropped.
    pub fn new(exit: impl FnOnce() + 'static) -> Self {
        EnterGuard {
            exit: Some(Box::new(exit)),
        }
    }
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        if let Some(exit) = self.exit.take() {
            exit();
        }
    }
}

impl std::fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EnterGuard")
    }
}

/// One file descriptor registered with a driver.
///
/// # Safety
///
/// An implementation upholds the memory safety of every [`Op`](crate::Op) polled through it. Safe
/// code can drop an operation at any await, poll it from any thread, and drop the source on any
/// thread; whatever it does:
///
/// * The kernel never reads or writes through an [`OpCode`]'s pointers once the operation's
///   memory was given back: [`poll_op`](Source::poll_op) returns `Ready` (after which [`Op`](crate::Op)
///   hands the memory to the caller) only when the kernel is done with those pointers, and
///   after [`drop_op`](Source::drop_op) the memory lives until the kernel is done with it.
/// * An fd number is never named by a request submitted after the fd was closed: the close comes
///   after every request queued for the fd, in order, so a reused number is never touched.
/// * A successful result is what the kernel returned for the operation `code` describes (a
///   read's count is the number of bytes written at its pointers), because the callers in
///   [`ops`](crate::ops) mark buffers initialised by it.
///
/// # Contract
///
/// * [`new`](Source::new) registers `fd` with the calling thread's current driver (fails with
///   [`not_on_a_reactor`] outside a reactor). The fd must have been created in the blocking mode
///   that [`nonblocking`](Source::nonblocking) asks for.
/// * [`adopt`](Source::adopt) registers `fd` with the driver `self` is registered with, from any
///   thread (an accept finished on a pool thread registers its connection this way).
/// * [`poll_op`](Source::poll_op) drives one operation, from whichever thread polls it. `state`
///   starts as `Default` and belongs to that operation alone; the same `code` is passed on every
///   poll. The first poll starts the operation; a poll after it returned `Ready` is a caller bug.
///   It returns `Ready` with the syscall's non-negative result, or the error.
/// * [`drop_op`](Source::drop_op) is called instead of further polls when the operation's future
///   is dropped after its first poll and before `Ready`. `keep_alive` owns the memory `code`
///   points into; the source must keep it alive until the kernel can no longer touch it (an
///   io_uring backend holds it until the CQE arrives and submits `ASYNC_CANCEL`), then drop it.
/// * [`poll_lent`](Source::poll_lent) performs a read or write over memory lent for the call
///   only, when the backend can do it without the kernel keeping the memory past the call (a
///   readiness syscall, or a copy from bytes already received), and says `None` otherwise (the
///   caller then runs an owned operation instead). It must not lose or reorder bytes with
///   respect to the operations of [`poll_op`](Source::poll_op) on the same fd.
/// * [`into_fd`](Source::into_fd) gives the socket up to the caller, refusing (with the source
///   given back) if the runtime holds bytes or connections received for it that no caller took,
///   or may still receive some for it: handing the fd over then would lose them.
/// * Dropping the source closes the fd, after every request already queued for it.
pub unsafe trait Source: Send + Sync + Sized + 'static {
    /// Per-operation state the driver keeps inline in the operation's future.
    type OpState: Default + Unpin + Send + 'static;

    /// Registers `fd` with the current thread's driver.
    fn new(fd: OwnedFd) -> io::Result<Self>;

    /// Registers `fd` with the driver `self` is registered with; callable from any thread.
    fn adopt(&self, fd: OwnedFd) -> io::Result<Self>;

    /// Whether fds handed to [`new`](Source::new) must be in nonblocking mode.
    fn nonblocking() -> io::Result<bool>;

    /// The raw fd, for `getsockopt` and friends. Never close it.
    fn as_raw_fd(&self) -> RawFd;

    /// The fd, borrowed for as long as the source.
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: a source's fd stays open for as long as the source lives (it is closed only
        // by dropping the source, the contract above).
        unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) }
    }

    /// Unregisters the socket and returns an fd for it that the caller owns (in the mode the
    /// backend left it); fails, giving the source back, while the runtime holds data received
    /// for it that no caller took, or may still receive some.
    fn into_fd(self) -> Result<OwnedFd, (io::Error, Self)>;

    /// Drives `code` towards completion.
    fn poll_op(
        &self,
        state: &mut Self::OpState,
        code: &OpCode,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>>;

    /// Reads or writes `op`'s lent memory within this call: `Ready` with the byte count (0 at
    /// end of file for a read), `Pending` with `cx`'s waker registered for when to try again,
    /// or `None` if this backend must run the operation as an owned [`Op`](crate::Op).
    fn poll_lent(&self, op: &mut Lent<'_>, cx: &mut Context<'_>)
        -> Option<Poll<io::Result<usize>>>;

    /// Gives up on an operation that was polled but has not completed.
    fn drop_op(&self, state: &mut Self::OpState, code: &OpCode, keep_alive: Box<dyn Any + Send>);
}

/// The error of creating a socket where no reactor runs: the same on every backend.
pub fn not_on_a_reactor() -> io::Error {
    io::Error::other(
        "sockets are created on a reactor thread: inside block_on, or a task of runtime::spawn or \
         runtime::spawn_on (not on a pool thread, and not outside the runtime)",
    )
}
