//! A socket fd used through the ring driver, from its reactor (inline) or any other thread
//! (handed over).

use std::any::Any;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll};

use io_uring::{opcode, squeue};
use runtime_core::{OpCode, Source, WakeStrategy};

use crate::direct::try_direct;
use crate::driver::{with_current, RingInner, IGNORED_USER_DATA};
use crate::multishot::{RecvQueue, Step};
use crate::remote::RemoteOp;
use crate::salvage::{is_read, Abandoned, Salvage};
use crate::shared::RingShared;
use crate::sqe;

/// An fd whose operations go through the ring of the reactor that created it.
pub struct RingSource {
    /// `None` only while dropping.
    fd: Option<OwnedFd>,
    owner: Arc<RingShared>,
    salvage: Arc<Salvage>,
    /// Bytes its multishot receive got and no read took yet (`None` without provided buffers).
    received: Option<Arc<RecvQueue>>,
}

impl std::fmt::Debug for RingSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingSource")
            .field("fd", &self.as_raw_fd())
            .field("ring", &self.owner.id)
            .finish()
    }
}

/// Where an operation is.
#[derive(Default)]
pub enum RingOpState {
    /// Not started.
    #[default]
    Idle,
    /// Submitted inline: its slot in the owning reactor's op table.
    Local(usize),
    /// Handed over from another thread: its completion cell.
    Remote(RemoteOpHandle),
}

/// A handed-over operation, as its future sees it.
pub struct RemoteOpHandle(Arc<RemoteOp>);

impl std::fmt::Debug for RemoteOpHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RemoteOpHandle")
    }
}

impl std::fmt::Debug for RingOpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingOpState::Idle => f.write_str("Idle"),
            RingOpState::Local(key) => write!(f, "Local({key})"),
            RingOpState::Remote(_) => f.write_str("Remote"),
        }
    }
}

fn cqe_result(res: i32) -> io::Result<u32> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as u32)
    }
}

fn moved_off_its_thread() -> io::Error {
    io::Error::other("an io_uring operation started on its reactor was polled from another thread")
}

impl RingSource {
    fn strategy(&self) -> WakeStrategy {
        self.owner
            .reactor
            .get()
            .map(|r| r.wake_strategy())
            .unwrap_or_default()
    }

    /// The owning ring, if the calling thread is its reactor.
    fn on_owner<R>(&self, f: impl FnOnce(&RingInner) -> R) -> Option<R> {
        with_current(|ring| (ring.id() == self.owner.id).then(|| f(ring))).flatten()
    }

    /// Gives an SQE to the owning reactor from another thread, by the wake strategy.
    fn hand_over(&self, entry: squeue::Entry) {
        let entry = if matches!(self.strategy(), WakeStrategy::SqPoll { .. }) {
            match self.owner.push_direct(entry) {
                Ok(()) => return,
                Err(entry) => entry,
            }
        } else {
            entry
        };
        // A refused handover (the reactor is gone) completes the operation with an error.
        if let Err(entry) = self.owner.hand_over(entry) {
            if crate::remote::is_remote(entry.get_user_data()) {
                self.owner.count_remote_done();
            }
            RemoteOp::fail_unsubmitted(&entry);
        }
    }

    /// The handoff path: starts `code` from a thread that is not the owning reactor.
    fn start_remote(
        &self,
        state: &mut RingOpState,
        code: &OpCode,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        if self.strategy() == WakeStrategy::DirectFirst {
            if let Some(m) = self.owner.reactor.get().map(|r| r.metrics()) {
                m.direct_syscalls.add(1);
            }
            if let Some(res) = try_direct(self.as_raw_fd(), code.kind()) {
                return Poll::Ready(res);
            }
        }
        let op = RemoteOp::new(cx.waker().clone());
        let entry =
            sqe::build(self.as_raw_fd(), code.kind()).user_data(op.clone().into_user_data());
        self.owner.count_remote_submitted();
        self.hand_over(entry);
        *state = RingOpState::Remote(RemoteOpHandle(op));
        Poll::Pending
    }
}

impl Source for RingSource {
    type OpState = RingOpState;

    fn new(fd: OwnedFd) -> io::Result<Self> {
        let owner = with_current(|ring| ring.shared.clone()).ok_or_else(|| {
            io::Error::other("sockets of the io_uring backend must be created on a reactor thread")
        })?;
        let received = owner.buffers.clone().map(RecvQueue::new);
        Ok(RingSource {
            fd: Some(fd),
            owner,
            salvage: Arc::default(),
            received,
        })
    }

    fn nonblocking() -> io::Result<bool> {
        // io_uring returns EAGAIN instead of waiting on an O_NONBLOCK socket.
        Ok(false)
    }

    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    fn poll_op(
        &self,
        state: &mut RingOpState,
        code: &OpCode,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        match state {
            RingOpState::Idle => {
                // SAFETY: `code`'s pointers are valid for its access (the `OpCode` invariant).
                if let Some(kept) = unsafe { self.salvage.take(code.kind(), cx.waker()) } {
                    return kept;
                }
                if let Some(done) = self.read_received(code, cx) {
                    return done;
                }
                let inline = self.on_owner(|ring| {
                    let key = ring.ops.borrow_mut().insert(cx.waker().clone());
                    ring.push(sqe::build(self.as_raw_fd(), code.kind()).user_data(key as u64));
                    key
                });
                match inline {
                    Some(key) => {
                        *state = RingOpState::Local(key);
                        Poll::Pending
                    }
                    None => self.start_remote(state, code, cx),
                }
            }
            RingOpState::Local(key) => {
                let key = *key;
                match self.on_owner(|ring| ring.ops.borrow_mut().poll(key, cx.waker())) {
                    Some(Some(res)) => Poll::Ready(cqe_result(res)),
                    Some(None) => Poll::Pending,
                    None => Poll::Ready(Err(moved_off_its_thread())),
                }
            }
            RingOpState::Remote(op) => match op.0.poll(cx.waker()) {
                Some(res) => Poll::Ready(cqe_result(res)),
                None => Poll::Pending,
            },
        }
    }

    fn drop_op(&self, state: &mut RingOpState, code: &OpCode, keep_alive: Box<dyn Any + Send>) {
        if let Some(m) = self.owner.reactor.get().map(|r| r.metrics()) {
            m.cancels.add(1);
        }
        match std::mem::take(state) {
            RingOpState::Idle => {}
            RingOpState::Local(key) => {
                if !self.owner_is_current() {
                    // Off the owning reactor the table that would keep the memory is out of
                    // reach: leak it rather than free it under the kernel.
                    std::mem::forget(keep_alive);
                    return;
                }
                let abandoned = Abandoned::new(*code.kind(), self.salvage.clone(), keep_alive);
                self.on_owner(|ring| {
                    if ring.ops.borrow_mut().abandon(key, abandoned) {
                        let cancel = opcode::AsyncCancel::new(key as u64);
                        ring.push(cancel.build().user_data(IGNORED_USER_DATA));
                    }
                });
            }
            RingOpState::Remote(op) => {
                let abandoned = Abandoned::new(*code.kind(), self.salvage.clone(), keep_alive);
                if op.0.abandon(abandoned) {
                    let cancel = opcode::AsyncCancel::new(op.0.user_data());
                    self.hand_over(cancel.build().user_data(IGNORED_USER_DATA));
                }
            }
        }
    }
}

impl RingSource {
    fn owner_is_current(&self) -> bool {
        self.on_owner(|_| ()).is_some()
    }

    /// A read through the multishot receive: what it got, `Pending` while it may still deliver
    /// (arming it first if needed, on the owning reactor), or `None` for a one-shot receive.
    fn read_received(&self, code: &OpCode, cx: &mut Context<'_>) -> Option<Poll<io::Result<u32>>> {
        let queue = self.received.as_ref()?;
        if !is_read(code.kind()) {
            return None;
        }
        let on_owner = self.owner_is_current();
        // SAFETY: `code`'s pointers are valid for its access (the `OpCode` invariant).
        match unsafe { queue.poll_read(self.as_raw_fd(), code.kind(), cx.waker(), on_owner) } {
            Ok(poll) => Some(poll),
            Err(Step::Arm(entry)) => {
                self.on_owner(|ring| ring.push_multishot(entry));
                Some(Poll::Pending)
            }
            Err(Step::OneShot) => None,
        }
    }
}

impl Drop for RingSource {
    fn drop(&mut self) {
        let Some(fd) = self.fd.take() else { return };
        let cancel = self.received.as_ref().and_then(|q| q.cancel());
        if !self.owner_is_current() {
            // The armed receive holds the file open in the kernel: cancel it through its ring.
            if let Some(cancel) = cancel {
                self.hand_over(cancel.user_data(IGNORED_USER_DATA));
            }
            return drop(fd);
        }
        if let Some(cancel) = cancel {
            self.on_owner(|ring| ring.push(cancel.user_data(IGNORED_USER_DATA)));
        }
        // Close through the ring: batched into the next submission instead of a syscall now.
        let raw = fd.into_raw_fd();
        self.on_owner(|ring| ring.close(raw));
    }
}
