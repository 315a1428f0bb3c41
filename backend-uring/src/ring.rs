//! One reactor's ring: pushing SQEs (in order, and never failing), entering the kernel, reaping
//! CQEs, and handling what other threads handed off. Sources reach it as the thread's current
//! ring.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, EnterFlags, IoUring};
use runtime_core::{LatencyBudget, Metrics, OpCode, BATCH};

/// The overall timeout of a wait under `min_wait` when no timer is due: long, so that an idle
/// reactor still sleeps (the wait simply starts again when it passes).
const NO_TIMER_WAIT: Duration = Duration::from_secs(3600);

use crate::direct_descriptors::{FileTable, SocketSlot};
use crate::enter::EnterFd;
use crate::handoff::{Handoff, HandoffOp};
use crate::lifecycle::Deferred;
use crate::multishot;
use crate::op_table::OpTable;
use crate::salvage::Abandoned;
use crate::shared::{RingPtr, RingShared};
use crate::sqe::{self, ZeroCopy};
use crate::user_data::UserData;

/// How long dropping a driver waits, in total, for cancelled operations to complete.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How many drivers were dropped before the kernel let go of everything (their memory leaked).
pub(crate) static DRAIN_TIMEOUTS: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// The reactor-thread state of one ring.
pub(crate) struct Ring {
    pub(crate) shared: Arc<RingShared>,
    /// How `io_uring_enter` names the ring (declared before `ring`: its drop unregisters the
    /// index while the ring's fd is still open).
    enter_fd: EnterFd,
    /// # Invariant
    /// The SQ and CQ are touched only by the reactor thread, except in `SqPoll` mode, where
    /// every SQ access (the reactor's too) holds `shared.sq`'s lock.
    ring: IoUring,
    sqpoll: bool,
    /// The latency budget as the kernel's `min_wait` (`IORING_FEAT_MIN_TIMEOUT`): a blocking
    /// wait that got a completion waits this long for [`BATCH`] before returning.
    min_wait_usec: Option<u32>,
    /// The latency budget as a nap after the wait, where the kernel's `min_wait` is not used.
    nap: Option<LatencyBudget>,
    ops: RefCell<OpTable>,
    /// How sends started here are made zero-copy (`None`: none are).
    zero_copy: Option<ZeroCopy>,
    /// The ring's registered file table (`None`: SQEs name sockets by fd).
    files: Option<FileTable>,
    taskrun_flag: bool,
    /// The eventfd other threads write to wake the ring (owned by the driver's unparker).
    eventfd: RawFd,
    /// The 8 bytes the eventfd read lands in.
    ///
    /// # Invariant
    /// Allocated by `Box::into_raw` in `Ring::new`, written only by the kernel, and freed only
    /// in `shut_down` once no eventfd read is in flight.
    wake_buf: *mut u64,
    wake_armed: Cell<bool>,
    /// `CLOSE`s pushed whose CQE has not come yet.
    closes_in_flight: Cell<usize>,
    /// Multishot receives armed whose final CQE has not come yet.
    multishots_in_flight: Cell<usize>,
    /// SQEs that found the SQ full and the kernel refusing more: they go in first, in order,
    /// on the next turn, and every SQE pushed meanwhile queues behind them.
    backlog: RefCell<VecDeque<squeue::Entry>>,
    /// Handoffs taken from the shared queue and not handled yet, oldest first.
    handoffs: RefCell<VecDeque<Handoff>>,
    /// What the CQEs of the reap in progress left to run (kept to reuse its allocation).
    deferred: RefCell<Vec<Deferred>>,
}

/// How far the ring is from its end, for the handoffs it handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Serving.
    Running,
    /// Shutting down: an operation handed off now is refused; what is pushed is still submitted
    /// by the drain.
    Draining,
    /// Drained (or given up on): nothing pushed is submitted any more.
    Closed,
}

/// The SQ's state as the kernel and we left it.
struct SqState {
    /// SQEs pushed and not submitted.
    to_submit: u32,
    /// The kernel flagged deferred task work (`TASKRUN_FLAG`).
    task_work: bool,
    /// The CQ overflowed: completions wait in the kernel.
    overflowed: bool,
    /// The SQ thread sleeps (`SqPoll` mode) and must be woken to submit.
    sq_asleep: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Ring>>> = const { RefCell::new(None) };
}

/// Runs `f` with the ring entered on the calling thread, if any. (The thread-local stays
/// borrowed, shared, while `f` runs; only entering or leaving a driver borrows it mutably.)
pub(crate) fn with_current<R>(f: impl FnOnce(&Ring) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(|ring| f(ring)))
        .ok()
        .flatten()
}

/// Makes `ring` the calling thread's current ring; returns the previous one.
pub(crate) fn set_current(ring: Option<Rc<Ring>>) -> Option<Rc<Ring>> {
    CURRENT.with(|c| std::mem::replace(&mut *c.borrow_mut(), ring))
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
    )
}

/// How a ring just set up runs, as the driver decided from its config and the kernel.
pub(crate) struct RingOptions {
    /// The kernel flags pending deferred work in the SQ ring (`TASKRUN_FLAG`).
    pub(crate) taskrun_flag: bool,
    /// The latency budget, if any.
    pub(crate) budget: Option<Duration>,
    /// The budget is the kernel's `min_wait` (else the driver's nap).
    pub(crate) min_wait: bool,
    /// How sends are made zero-copy (`None`: none are).
    pub(crate) zero_copy: Option<ZeroCopy>,
    /// The registered file table, if any.
    pub(crate) files: Option<FileTable>,
}

impl Ring {
    /// Wraps a ring just set up; arms the eventfd read.
    pub(crate) fn new(
        ring: IoUring,
        options: RingOptions,
        enter_fd: EnterFd,
        eventfd: RawFd,
        shared: Arc<RingShared>,
    ) -> Rc<Self> {
        let RingOptions {
            taskrun_flag,
            budget,
            min_wait,
            zero_copy,
            files,
        } = options;
        let sqpoll = ring.params().is_setup_sqpoll();
        let budget = budget.and_then(LatencyBudget::new);
        let min_wait_usec = budget
            .filter(|_| min_wait)
            .map(|b| b.duration().as_micros().clamp(1, u32::MAX as u128) as u32);
        let ring = Rc::new(Ring {
            shared,
            enter_fd,
            ring,
            sqpoll,
            min_wait_usec,
            nap: budget.filter(|_| !min_wait),
            ops: RefCell::new(OpTable::default()),
            zero_copy,
            files,
            taskrun_flag,
            eventfd,
            wake_buf: Box::into_raw(Box::new(0u64)),
            wake_armed: Cell::new(false),
            closes_in_flight: Cell::new(0),
            multishots_in_flight: Cell::new(0),
            backlog: RefCell::default(),
            handoffs: RefCell::default(),
            deferred: RefCell::default(),
        });
        if sqpoll {
            *ring.shared.sq.lock() = Some(RingPtr(&ring.ring));
        }
        ring.arm_wake();
        ring
    }

    /// The parameters the kernel set the ring up with.
    #[cfg(test)]
    pub(crate) fn params(&self) -> &io_uring::Parameters {
        self.ring.params()
    }

    pub(crate) fn id(&self) -> usize {
        self.shared.id
    }

    fn with_metrics(&self, f: impl FnOnce(&Metrics)) {
        if let Some(r) = self.shared.reactor.get() {
            f(r.metrics());
        }
    }

    /// Queues an SQE for the next submission, behind every SQE queued before it. Never fails:
    /// an SQE that finds no room waits in the backlog for the next turn.
    pub(crate) fn push(&self, entry: squeue::Entry) {
        let mut backlog = self.backlog.borrow_mut();
        if backlog.is_empty() && self.try_push(&entry) {
            return;
        }
        backlog.push_back(entry);
    }

    /// Puts `entry` in the SQ, submitting what is queued (without waiting) to make room if it
    /// is full. `false` if there is still no room (the kernel refuses more until we reap).
    fn try_push(&self, entry: &squeue::Entry) -> bool {
        let _sq_lock = self.sqpoll.then(|| self.shared.sq.lock());
        for attempt in 0..2 {
            if attempt == 1 {
                self.with_metrics(|m| m.sq_full.add_local(1));
                if self.submit_to_make_room().is_err() {
                    return false;
                }
            }
            // SAFETY: the SQ is ours alone here (the `ring` invariant: reactor thread, or the
            // `SqPoll` lock held just above).
            let mut sq = unsafe { self.ring.submission_shared() };
            // SAFETY: every pointer in an SQE pushed here points into memory kept alive until
            // its CQE: the operation's own memory (the `OpCode` invariant, then the op table or
            // a handoff cell after the future drops), the ring's wake buffer (its invariant), or
            // the file table's fd for a slot's install (`Slots::fds`' invariant; the table
            // lives as long as the ring, and shutting down waits for updates in flight) or the
            // constant an emptying reads.
            if unsafe { sq.push(entry) }.is_ok() {
                self.with_metrics(|m| m.sqes_submitted.add_local(1));
                return true;
            }
        }
        false
    }

    /// Submits what the SQ holds, without waiting, so that a push finds room.
    fn submit_to_make_room(&self) -> io::Result<usize> {
        #[cfg(test)]
        if tests::REFUSED_SUBMITS.with(|n| n.get()) > 0 {
            tests::REFUSED_SUBMITS.with(|n| n.set(n.get() - 1));
            return Err(io::Error::from_raw_os_error(libc::EBUSY));
        }
        self.ring.submit()
    }

    /// Moves the backlog into the SQ as far as it fits; `true` if it is empty now.
    fn flush_backlog(&self) -> bool {
        let mut backlog = self.backlog.borrow_mut();
        while let Some(entry) = backlog.front() {
            if !self.try_push(entry) {
                return false;
            }
            backlog.pop_front();
        }
        true
    }

    /// Cancels the request whose user data is `target`.
    fn push_cancel(&self, target: u64) {
        let cancel = opcode::AsyncCancel::new(target).build();
        self.push(cancel.user_data(UserData::Ignored.encode()));
    }

    /// Starts the operation `code` on the socket `fd` whose slot in the file table is `slot`,
    /// a zero-copy send if it is a large enough send on a socket that `may_zero_copy`; returns
    /// its key.
    pub(crate) fn start_op(
        &self,
        fd: RawFd,
        slot: &SocketSlot,
        code: &OpCode,
        waker: &Waker,
        may_zero_copy: impl FnOnce() -> bool,
    ) -> usize {
        let file = match &self.files {
            Some(files) => files.name(fd, slot, &self.ring, |install| self.push(install)),
            None => sqe::File::Fd(fd),
        };
        let (entry, zero_copy) = sqe::build_tracked(file, code, self.zero_copy, may_zero_copy);
        if zero_copy {
            self.with_metrics(|m| m.zero_copy_sends.add_local(1));
        }
        self.start(entry, waker)
    }

    /// Starts an operation: its SQE (without user data) goes in, its key comes back.
    pub(crate) fn start(&self, entry: squeue::Entry, waker: &Waker) -> usize {
        let key = self.ops.borrow_mut().insert(waker.clone());
        self.push(entry.user_data(UserData::Op(key).encode()));
        key
    }

    /// Polls the operation `key` from its reactor.
    pub(crate) fn poll(&self, key: usize, waker: &Waker) -> Option<i32> {
        let (res, deferred) = self.ops.borrow_mut().poll(key, waker);
        deferred.run();
        res
    }

    /// The future of the operation `key` is gone; `abandoned` keeps its memory.
    pub(crate) fn abandon(&self, key: usize, abandoned: Box<Abandoned>) {
        let (deferred, cancellable) = self.ops.borrow_mut().abandon(key, abandoned);
        if cancellable {
            self.push_cancel(UserData::Op(key).encode());
        }
        deferred.run();
    }

    /// Closes `fd` through the ring, with the next submission. The fd must not be used again.
    pub(crate) fn close(&self, fd: RawFd) {
        self.closes_in_flight.set(self.closes_in_flight.get() + 1);
        let close = opcode::Close::new(types::Fd(fd)).build();
        self.push(close.user_data(UserData::Close.encode()));
    }

    /// A socket of this ring is dropped here: everything handed off before (which may name its
    /// fd) goes in first, then the cancel of its multishot receive, the emptying of its slot in
    /// the file table (`slot`), and its close.
    pub(crate) fn release(
        &self,
        fd: std::os::fd::OwnedFd,
        received: Option<Arc<multishot::RecvQueue>>,
        slot: Option<u32>,
    ) {
        self.run_handoffs();
        self.handle(Handoff::Release { fd, received, slot });
    }

    /// Arms a socket's multishot receive (made by `RecvQueue::poll_read`).
    pub(crate) fn push_multishot(&self, entry: squeue::Entry) {
        self.multishots_in_flight
            .set(self.multishots_in_flight.get() + 1);
        self.push(entry);
    }

    fn arm_wake(&self) {
        let entry = opcode::Read::new(
            types::Fd(self.eventfd),
            self.wake_buf.cast::<u8>(),
            std::mem::size_of::<u64>() as u32,
        )
        .build()
        .user_data(UserData::Wake.encode());
        self.push(entry);
        self.wake_armed.set(true);
    }

    /// Handles every handoff sent so far, oldest first. Re-entrant: a handoff whose handling
    /// drops a socket of this ring handles the rest first, so the order holds.
    pub(crate) fn run_handoffs(&self) {
        self.shared.take_handoffs(&mut self.handoffs.borrow_mut());
        self.handle_taken(Stage::Running);
    }

    /// Handles the handoffs taken, oldest first, as `stage` allows.
    fn handle_taken(&self, stage: Stage) {
        loop {
            let next = self.handoffs.borrow_mut().pop_front();
            match (next, stage) {
                (Some(handoff @ Handoff::Submit(_)), Stage::Draining | Stage::Closed) => {
                    self.shared.refuse(handoff)
                }
                // Nothing pushed now reaches the kernel: the fd is closed here, and no SQE
                // that names it will be submitted.
                (Some(handoff @ Handoff::Release { .. }), Stage::Closed) => {
                    self.shared.refuse(handoff)
                }
                (Some(handoff), _) => self.handle(handoff),
                (None, _) => break,
            }
        }
    }

    fn handle(&self, handoff: Handoff) {
        match handoff {
            Handoff::Submit(entry) => self.push(entry),
            Handoff::Migrate { key, cell } => {
                let deferred = self.ops.borrow_mut().migrate(key, cell);
                deferred.run();
            }
            Handoff::Abandon { key, abandoned } => self.abandon(key, abandoned),
            Handoff::Cancel(cell) => {
                // The cell pins its identity: while it lives, nothing else can have its user
                // data, and its own SQE went in before this cancel (handoffs keep their order).
                let in_flight = match cell.key() {
                    Some(key) => self.ops.borrow().is_migrated_to(key, &cell),
                    None => !cell.is_completed(),
                };
                if in_flight {
                    self.push_cancel(cell.user_data());
                }
            }
            Handoff::Release { fd, received, slot } => {
                if let Some(cancel) = received.and_then(|queue| queue.cancel()) {
                    self.push(cancel.user_data(UserData::Ignored.encode()));
                }
                // A slot is only ever given out by this ring's table.
                if let (Some(index), Some(files)) = (slot, &self.files) {
                    self.push(files.empty(index));
                }
                self.close(fd.into_raw_fd());
            }
        }
    }

    /// Handles one CQE; what it leaves to run goes to `deferred`. Returns `true` for the wake
    /// read's CQE.
    fn dispatch(&self, cqe: &cqueue::Entry, deferred: &mut Vec<Deferred>) -> bool {
        let result = cqe.result();
        match UserData::decode(cqe.user_data()) {
            UserData::Wake => return true,
            UserData::Ignored => {}
            UserData::Close => self.closes_in_flight.set(self.closes_in_flight.get() - 1),
            UserData::FileSlot { index, install } => {
                let files = self.files.as_ref();
                if files.is_some_and(|files| files.completed(index, install, result)) {
                    self.with_metrics(|m| m.direct_descriptors.add_local(1));
                }
            }
            UserData::Op(key) => {
                let flags = cqe.flags();
                if cqueue::notif(flags) && result as u32 & sqe::NOTIF_USAGE_ZC_COPIED != 0 {
                    self.with_metrics(|m| m.zero_copy_copied.add_local(1));
                }
                deferred.push(self.ops.borrow_mut().complete(key, result, flags));
            }
            UserData::Handoff(addr) => {
                self.shared.count_handoff_done();
                // SAFETY: handoff user data is only made by `HandoffOp::into_user_data` for an
                // SQE, whose single CQE this is.
                let cell = unsafe { HandoffOp::from_user_data(addr) };
                deferred.push(cell.complete(result));
            }
            UserData::Receive(addr) => {
                let busy = self.shared.load.busy();
                // SAFETY: receive user data is only made by `RecvQueue::poll_read`, and a
                // receive's CQEs end with the one that has no `F_MORE` (handled once here).
                let done = unsafe { multishot::complete(addr, result, cqe.flags(), busy) };
                if done.bundle {
                    self.with_metrics(|m| m.receive_bundles.add_local(1));
                }
                if done.shared {
                    self.with_metrics(|m| m.shared_buffer_receives.add_local(1));
                }
                if done.finished {
                    self.multishots_in_flight
                        .set(self.multishots_in_flight.get() - 1);
                }
                if let Some(cancel) = done.cancel {
                    self.push(cancel.user_data(UserData::Ignored.encode()));
                }
                deferred.extend(done.waiter.into_iter().map(Deferred::Wake));
                deferred.extend(done.more_waiters.into_iter().map(Deferred::Wake));
            }
        }
        false
    }

    /// Takes every CQE off the completion queue and hands it to its operation; wakes after.
    /// `rearm` re-arms the wake read when its CQE comes (not while shutting down).
    fn reap(&self, rearm: bool) -> usize {
        let mut deferred = self.deferred.take();
        let mut woken = false;
        let mut reaped = 0;
        // SAFETY: only the reactor thread touches the CQ (the `ring` invariant).
        for cqe in unsafe { self.ring.completion_shared() } {
            reaped += 1;
            woken |= self.dispatch(&cqe, &mut deferred);
        }
        self.with_metrics(|m| m.cqes_reaped.add_local(reaped));
        self.shared.load.reaped(reaped as usize);
        if woken {
            self.wake_armed.set(false);
            if rearm {
                self.arm_wake();
            }
        }
        for work in deferred.drain(..) {
            work.run();
        }
        *self.deferred.borrow_mut() = deferred;
        reaped as usize
    }

    /// What the SQ holds (read only, nothing counted).
    fn sq_state(&self) -> SqState {
        let _sq_lock = self.sqpoll.then(|| self.shared.sq.lock());
        // SAFETY: reading the SQ's state with the SQ ours (the `ring` invariant).
        let sq = unsafe { self.ring.submission_shared() };
        SqState {
            to_submit: sq.len() as u32,
            task_work: self.taskrun_flag && sq.taskrun(),
            overflowed: sq.cq_overflow(),
            sq_asleep: self.sqpoll && sq.need_wakeup(),
        }
    }

    /// Submits what is queued and waits for at least one completion, at most `timeout`
    /// (`Some(ZERO)`: no wait, and no syscall at all if there is nothing to submit or reap).
    /// With a latency budget, a wait that got a completion goes on for up to the budget while
    /// fewer than [`BATCH`] came, within `timeout`.
    fn enter(&self, timeout: Option<Duration>) -> io::Result<()> {
        let SqState {
            to_submit,
            task_work,
            overflowed,
            sq_asleep,
        } = self.sq_state();
        if overflowed {
            self.with_metrics(|m| m.cq_overflows.add_local(1));
        }
        // Work that only an enter with `GETEVENTS` does.
        let flagged = task_work || overflowed;
        let mut flags = EnterFlags::GETEVENTS;
        if sq_asleep {
            flags |= EnterFlags::SQ_WAKEUP;
        }
        // An awake SQ thread submits by itself.
        let nothing_to_submit = to_submit == 0 || (self.sqpoll && !sq_asleep);
        let submitter = &self.enter_fd;
        let res = match timeout {
            Some(t) if t.is_zero() => {
                if nothing_to_submit && !flagged {
                    return Ok(());
                }
                self.with_metrics(|m| m.driver_waits.add_local(1));
                // SAFETY: no argument is passed.
                unsafe { submitter.enter::<libc::sigset_t>(to_submit, 0, flags.bits(), None) }
            }
            None if self.min_wait_usec.is_none() => {
                self.with_metrics(|m| m.driver_waits.add_local(1));
                // SAFETY: no argument is passed.
                unsafe { submitter.enter::<libc::sigset_t>(to_submit, 1, flags.bits(), None) }
            }
            timeout => {
                self.with_metrics(|m| m.driver_waits.add_local(1));
                let mut want = 1;
                let mut min_wait = None;
                let mut timeout = timeout;
                if let Some(usec) = self.min_wait_usec {
                    // The kernel ends a wait with no overall timeout at `min_wait`, events or
                    // not, and lets `min_wait` outlast a shorter timeout: so the wait gets an
                    // overall timeout (the timer's, or a long one), and `min_wait` never runs
                    // past it. Past `min_wait` with no completion yet, the first one returns.
                    let limit = timeout.unwrap_or(NO_TIMER_WAIT);
                    let limit_usec = limit.as_micros().min(u32::MAX as u128) as u32;
                    min_wait = Some(usec.min(limit_usec));
                    timeout = Some(limit);
                    want = BATCH as u32;
                }
                let ts = timeout.map(types::Timespec::from);
                let mut args = types::SubmitArgs::new();
                if let Some(ts) = &ts {
                    args = args.timespec(ts);
                }
                if let Some(usec) = min_wait {
                    args = args.min_wait_usec(usec);
                }
                let flags = flags | EnterFlags::EXT_ARG;
                // SAFETY: `args` is the `io_uring_getevents_arg` that `EXT_ARG` announces
                // (`SubmitArgs` is a transparent wrapper of it), and it and the timespec it
                // points to are alive for the call.
                unsafe { submitter.enter(to_submit, want, flags.bits(), Some(&args)) }
            }
        };
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One turn: handles handoffs, submits, waits at most `timeout`, reaps. Under a latency
    /// budget, SQEs are submitted before the wait, and completions already in the CQ (a send
    /// finished inside that submission) end the turn without waiting; otherwise the wait is
    /// the kernel's `min_wait`, or a wait followed by a nap and a reap of what came meanwhile.
    pub(crate) fn turn(&self, mut timeout: Option<Duration>) -> io::Result<()> {
        self.run_handoffs();
        // A backlog means the kernel refused SQEs until its completions are reaped: reap, and
        // then do not wait, as tasks were woken.
        while !self.flush_backlog() {
            self.enter(Some(Duration::ZERO))?;
            self.reap(true);
            timeout = Some(Duration::ZERO);
        }
        let budgeted = self.min_wait_usec.is_some() || self.nap.is_some();
        if budgeted && timeout != Some(Duration::ZERO) {
            self.submit_only()?;
            if self.completions_waiting() {
                self.reap(true);
                return Ok(());
            }
        }
        LatencyBudget::park(self.nap, timeout, |timeout| {
            self.enter(timeout)?;
            Ok(self.reap(true))
        })
    }

    /// Submits what the SQ holds without running the kernel's deferred task work (no
    /// `GETEVENTS`): what completes inside the submission (a send) is posted, and completions of
    /// earlier requests (data that arrived meanwhile) stay for the wait to batch.
    fn submit_only(&self) -> io::Result<()> {
        let state = self.sq_state();
        if state.to_submit == 0 || self.sqpoll {
            return Ok(()); // nothing queued, or the SQ thread submits it
        }
        self.with_metrics(|m| m.driver_waits.add_local(1));
        // SAFETY: no argument is passed and no flag announces one.
        match unsafe {
            self.enter_fd
                .enter::<libc::sigset_t>(state.to_submit, 0, 0, None)
        } {
            Err(e) if !is_transient(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether the CQ holds completions not reaped yet.
    fn completions_waiting(&self) -> bool {
        // SAFETY: only the reactor thread touches the CQ (the `ring` invariant); this reads its
        // head and tail only.
        !unsafe { self.ring.completion_shared() }.is_empty()
    }

    /// Whether the kernel may still hold anything of this ring's.
    fn pending(&self) -> bool {
        self.ops.borrow().has_in_flight()
            || self.shared.handoffs_in_flight() > 0
            || self.closes_in_flight.get() > 0
            || self.multishots_in_flight.get() > 0
            || self.files.as_ref().is_some_and(FileTable::in_flight)
            || self.wake_armed.get()
            || !self.backlog.borrow().is_empty()
    }

    /// Handles handoffs while shutting down.
    fn run_handoffs_closing(&self) {
        self.shared.take_handoffs(&mut self.handoffs.borrow_mut());
        self.handle_taken(Stage::Draining);
    }

    /// Cancels what is in flight and waits (boundedly) for the kernel to let go of it; memory the
    /// kernel still holds after that is leaked rather than freed. `cancel_any`: the kernel takes
    /// `IORING_ASYNC_CANCEL_ANY` (6.0 and later).
    pub(crate) fn shut_down(&self, cancel_any: bool) {
        // What is queued goes to the kernel now, before any fd is closed without the ring.
        self.flush_backlog();
        let _ = self.enter(Some(Duration::ZERO));
        self.run_handoffs_closing();
        for key in self.ops.borrow().in_flight() {
            self.push_cancel(UserData::Op(key).encode());
        }
        // The wake read by its user data: kernels before 6.0 refuse the cancel-any below.
        self.push_cancel(UserData::Wake.encode());
        if cancel_any {
            // Everything else (handed-off operations).
            let any = opcode::AsyncCancel2::new(types::CancelBuilder::any()).build();
            self.push(any.user_data(UserData::Ignored.encode()));
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while self.pending() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.flush_backlog();
            if self.enter(Some(deadline - now)).is_err() {
                break;
            }
            self.reap(false);
            self.run_handoffs_closing();
        }
        let drained = !self.pending();
        self.shared.close(drained, &mut self.handoffs.borrow_mut());
        self.handle_taken(Stage::Closed);
        if !drained {
            DRAIN_TIMEOUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.ops.borrow_mut().leak_all();
        }
        if let Some(buffers) = &self.shared.buffers {
            if self.multishots_in_flight.get() > 0 {
                // A receive the kernel still holds may write into the buffers: keep them.
                std::mem::forget(buffers.clone());
            } else {
                buffers.unregister(&self.ring);
            }
        }
        if !self.wake_armed.get() {
            // SAFETY: the buffer came from `Box::into_raw` and no eventfd read is in flight
            // (`wake_buf`'s invariant).
            drop(unsafe { Box::from_raw(self.wake_buf) });
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;
    use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
    use std::time::Duration;

    use super::Stage;
    use crate::driver::RingDriver;
    use crate::handoff::Handoff;
    use crate::setup::RingConfig;

    thread_local! {
        /// How many of the next early submits (a push finding the SQ full) the kernel "refuses".
        pub(crate) static REFUSED_SUBMITS: Cell<usize> = const { Cell::new(0) };
    }

    /// Whether `fd` is still open on `/dev/null`. (Whether the number is open at all would not
    /// do: tests running beside this one open sockets, which may take a closed fd's number.)
    fn is_dev_null(fd: RawFd) -> bool {
        use std::os::linux::fs::MetadataExt;
        let dev_null = std::fs::metadata("/dev/null").expect("/dev/null").st_rdev();
        // SAFETY: all-zero is a valid `stat`, which `fstat` only writes.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid `stat` to write; `fstat` only reads the fd table.
        let open = unsafe { libc::fstat(fd, &mut st) } == 0;
        open && st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == dev_null
    }

    /// The inode `fd` names, if it is open.
    fn inode(fd: RawFd) -> Option<u64> {
        // SAFETY: all-zero is a valid `stat`, which `fstat` only writes.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid `stat` to write; `fstat` only reads the fd table.
        (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_ino)
    }

    /// A socket released by another thread just as the ring closes (its handoff taken with the
    /// last ones) is closed there and then: a `CLOSE` pushed now would never be submitted.
    #[test]
    fn a_release_handled_after_the_drain_closes_its_fd() {
        let driver = match RingDriver::new(&RingConfig::default()) {
            Ok(d) => d,
            Err(e) => return eprintln!("skipped: this kernel refuses io_uring: {e}"),
        };
        let ring = driver.ring();
        // A socket, not `/dev/null`: tests beside this one close `/dev/null` fds and check them.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (fd, before) = (socket.as_raw_fd(), inode(socket.as_raw_fd()));
        ring.handoffs.borrow_mut().push_back(Handoff::Release {
            fd: socket.into(),
            received: None,
            slot: None,
        });
        ring.handle_taken(Stage::Closed);
        // Its number may name something else by now, but not this socket.
        assert_ne!(inode(fd), before, "the released fd is still open");
        assert_eq!(ring.closes_in_flight.get(), 0, "a CLOSE was pushed");
    }

    /// A push that finds the SQ full while the kernel refuses to take more (`EBUSY` while the
    /// CQ overflows, or any other error) neither panics nor reaps inside the push: it waits in
    /// the backlog, and the next turn submits it, after everything pushed before it.
    #[test]
    fn pushes_the_kernel_refuses_wait_for_the_next_turn() {
        let config = RingConfig {
            entries: 2,
            ..RingConfig::default()
        };
        let driver = match RingDriver::new(&config) {
            Ok(d) => d,
            Err(e) => return eprintln!("skipped: this kernel refuses io_uring: {e}"),
        };
        let ring = driver.ring();
        let fds: Vec<RawFd> = (0..8)
            .map(|_| {
                let file = std::fs::File::open("/dev/null").expect("open");
                assert!(file.as_raw_fd() >= 0);
                file.into_raw_fd()
            })
            .collect();
        REFUSED_SUBMITS.with(|n| n.set(usize::MAX));
        for &fd in &fds {
            ring.close(fd);
        }
        REFUSED_SUBMITS.with(|n| n.set(0));
        assert!(
            !ring.backlog.borrow().is_empty(),
            "a two-entry SQ cannot hold eight"
        );
        for _ in 0..16 {
            if ring.closes_in_flight.get() == 0 {
                break;
            }
            ring.turn(Some(Duration::from_millis(100))).expect("turn");
        }
        assert_eq!(ring.closes_in_flight.get(), 0, "every close completed");
        assert!(
            fds.iter().all(|&fd| !is_dev_null(fd)),
            "every fd was closed"
        );
    }
}
