//! A socket fd used through the ring driver, from its reactor or any other thread (the handoff
//! path).

use std::any::Any;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use runtime_core::{Lent, OpCode, OpKind, Source};

use crate::direct::try_direct;
use crate::direct_descriptors::SocketSlot;
use crate::handoff::{Handoff, HandoffOp};
use crate::multishot::{RecvQueue, Step};
use crate::ring::{with_current, Ring};
use crate::salvage::{is_read, Abandoned, Salvage};
use crate::setup::RingWake;
use crate::shared::RingShared;
use crate::socket_kind::is_inet;
use crate::sqe;

/// An fd whose operations go through the ring of the reactor that registered it.
pub struct RingSource {
    /// `None` only while dropping.
    fd: Option<OwnedFd>,
    owner: Arc<RingShared>,
    /// What its dropped operations got, made by the first drop of an operation in flight: a
    /// socket that never drops one never touches memory of its own beyond this struct for it.
    salvage: OnceLock<Arc<Salvage>>,
    /// Bytes its multishot receive got and no read took yet (`None` without provided buffers,
    /// and while dropping).
    received: Option<Arc<RecvQueue>>,
    /// Whether its sends may be zero-copy (a TCP socket: the kernel refuses `SEND_ZC` on
    /// others), found on its first large send.
    zero_copy: OnceLock<bool>,
    /// The last read the receive queue answered on the owning reactor was a `Recv` it sent to
    /// a late receive, and no read elsewhere came after it: the queue was empty with no
    /// receive armed, and only a read on the owning reactor arms one. So while the reactor is
    /// busy, the next `Recv` there receives late without taking the queue's lock, whose
    /// memory a busy reactor with many sockets finds cold on every request.
    late_reads: AtomicBool,
    /// Its slot in the owning ring's file table, or the operations it started there by fd.
    slot: SocketSlot,
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
    /// Started on the owning reactor: its key in that reactor's op table.
    Local(usize),
    /// Waited for off the owning reactor (handed off, or migrated there): its completion cell.
    Handoff(HandoffHandle),
}

/// A handed-off operation, as its future sees it.
pub struct HandoffHandle(Arc<HandoffOp>);

impl std::fmt::Debug for HandoffHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandoffHandle")
    }
}

impl std::fmt::Debug for RingOpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RingOpState::Idle => f.write_str("Idle"),
            RingOpState::Local(key) => write!(f, "Local({key})"),
            RingOpState::Handoff(_) => f.write_str("Handoff"),
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

impl RingSource {
    fn with_ring(owner: Arc<RingShared>, fd: OwnedFd) -> Self {
        let received = owner.buffers.clone().map(RecvQueue::new);
        RingSource {
            fd: Some(fd),
            owner,
            salvage: OnceLock::new(),
            received,
            zero_copy: OnceLock::new(),
            late_reads: AtomicBool::new(false),
            slot: SocketSlot::default(),
        }
    }

    /// Whether the kernel takes zero-copy sends on this socket: TCP over IPv4 or IPv6 (not
    /// MPTCP, nor Unix streams, which refuse `SEND_ZC`).
    fn may_zero_copy(&self) -> bool {
        *self.zero_copy.get_or_init(|| {
            // SAFETY: the fd is this source's, open while `self` is borrowed.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.as_raw_fd()) };
            is_inet(fd, socket2::Type::STREAM, Some(socket2::Protocol::TCP))
        })
    }

    /// Adds one to a counter of the owning reactor (from any thread).
    fn count(
        &self,
        counter: impl FnOnce(&runtime_core::Metrics) -> &runtime_core::metrics::Counter,
    ) {
        if let Some(reactor) = self.owner.reactor.get() {
            counter(reactor.metrics()).add(1);
        }
    }

    /// As [`count`](Self::count), from the owning reactor's thread only: without a locked
    /// instruction, for what is counted on every request.
    fn count_on_owner(
        &self,
        counter: impl FnOnce(&runtime_core::Metrics) -> &runtime_core::metrics::Counter,
    ) {
        if let Some(reactor) = self.owner.reactor.get() {
            counter(reactor.metrics()).add_local(1);
        }
    }

    fn count_salvaged(&self, kept: &Poll<io::Result<u32>>) {
        if kept.is_ready() {
            self.count(|m| &m.salvaged);
        }
    }

    /// The socket's salvage, made on first use.
    fn salvage(&self) -> Arc<Salvage> {
        self.salvage.get_or_init(Arc::default).clone()
    }

    /// What dropped operations kept for an operation of `kind`, if any (see [`Salvage::take`]).
    ///
    /// # Safety
    /// As [`Salvage::take`]'s.
    unsafe fn take_salvaged(
        &self,
        kind: &OpKind,
        waker: &std::task::Waker,
    ) -> Option<Poll<io::Result<u32>>> {
        // SAFETY: the caller's promise.
        self.salvage
            .get()
            .and_then(|s| unsafe { s.take(kind, waker) })
    }

    /// The owning ring, if the calling thread is its reactor.
    fn on_owner<R>(&self, f: impl FnOnce(&Ring) -> R) -> Option<R> {
        with_current(|ring| (ring.id() == self.owner.id).then(|| f(ring))).flatten()
    }

    /// Whether the runtime holds bytes or connections received for this socket that no caller
    /// took, or may still receive some (an armed multishot receive, an abandoned read).
    fn holds_received(&self) -> bool {
        self.salvage.get().is_some_and(|s| s.holds())
            || self.received.as_ref().is_some_and(|q| q.holds())
    }

    fn owner_is_current(&self) -> bool {
        self.on_owner(|_| ()).is_some()
    }

    /// The handoff path: starts `code` from a thread that is not the owning reactor.
    fn start_handoff(
        &self,
        state: &mut RingOpState,
        code: &OpCode,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        if self.owner.wake == RingWake::DirectFirst {
            self.count(|m| &m.direct_syscalls);
            if let Some(res) = try_direct(self.as_raw_fd(), code) {
                return Poll::Ready(res);
            }
        }
        let cell = HandoffOp::new(cx.waker().clone());
        let entry = sqe::build(self.as_raw_fd(), code).user_data(cell.clone().into_user_data());
        self.owner.count_handoff_submitted();
        self.owner.send(Handoff::Submit(entry));
        *state = RingOpState::Handoff(HandoffHandle(cell));
        Poll::Pending
    }

    /// An operation started on the owning reactor is polled on another thread: from now on its
    /// result goes to a cell that wakes this thread's waker (the reactor moves it there).
    fn migrate(
        &self,
        state: &mut RingOpState,
        key: usize,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        let cell = HandoffOp::migrated(key, cx.waker().clone());
        self.owner.send(Handoff::Migrate {
            key,
            cell: cell.clone(),
        });
        let res = cell.poll(cx.waker());
        *state = RingOpState::Handoff(HandoffHandle(cell));
        match res {
            Some(res) => Poll::Ready(cqe_result(res)),
            None => Poll::Pending,
        }
    }

    /// A read of `kind` (a stream read, or a datagram's message receive) through the multishot
    /// receive: what it got, `Pending` while it may still deliver (arming it first if needed,
    /// on the owning reactor), or which one-shot receive to make instead. `lent`: the read's
    /// memory is lent for this call only (`poll_lent`).
    ///
    /// # Safety
    /// `kind`'s pointers must be valid for its access for this call.
    unsafe fn read_received(&self, kind: &OpKind, cx: &mut Context<'_>, lent: bool) -> Received {
        if !is_read(kind) {
            return Received::NotARead;
        }
        let Some(queue) = self.received.as_ref() else {
            return Received::OneShot;
        };
        let on_owner = self.owner_is_current();
        let busy = self.owner.load.busy();
        let recv = matches!(kind, OpKind::Recv { .. });
        if recv && busy && on_owner && !lent && self.late_reads.load(Ordering::Relaxed) {
            // What `poll_read` would answer (`late_reads`), or, if the kernel has refused a
            // multishot receive since, a one-shot receive: the same receive, counted apart.
            return Received::Late;
        }
        // SAFETY: the caller's promise.
        let step =
            unsafe { queue.poll_read(self.as_raw_fd(), kind, cx.waker(), on_owner, busy, lent) };
        let late = recv && on_owner && matches!(step, Err(Step::Late));
        self.late_reads.store(late, Ordering::Relaxed);
        match step {
            Ok(poll) => Received::Answered(poll),
            Err(Step::Arm(entry)) => {
                self.on_owner(|ring| ring.push_multishot(entry));
                Received::Answered(Poll::Pending)
            }
            Err(Step::OneShot) => Received::OneShot,
            Err(Step::Late) => Received::Late,
        }
    }
}

/// What the receive queue made of an operation.
enum Received {
    /// Answered from the queue, or waiting on it.
    Answered(Poll<io::Result<u32>>),
    /// A read for a one-shot receive.
    OneShot,
    /// A read for a one-shot receive because the reactor is busy (a late receive). Only on
    /// the owning reactor: only a read there may arm a receive, which a late one replaces.
    Late,
    /// Not a read: the queue has no part in it.
    NotARead,
}

// SAFETY: an operation's memory is handed back only with a result from its CQE (the op table's
// or its handoff cell's `Completed`), or from a direct syscall that is over when it returns; an
// operation polled off its reactor migrates to a cell instead of returning; a dropped operation's
// memory is kept (`Abandoned`) until its CQE, on whichever thread it is dropped. The fd is closed
// by the owning reactor, behind every SQE handed off before the close (handoffs keep their order).
unsafe impl Source for RingSource {
    type OpState = RingOpState;

    fn new(fd: OwnedFd) -> io::Result<Self> {
        let owner =
            with_current(|ring| ring.shared.clone()).ok_or_else(runtime_core::not_on_a_reactor)?;
        Ok(RingSource::with_ring(owner, fd))
    }

    fn adopt(&self, fd: OwnedFd) -> io::Result<Self> {
        Ok(RingSource::with_ring(self.owner.clone(), fd))
    }

    fn nonblocking() -> io::Result<bool> {
        // io_uring returns EAGAIN instead of waiting on an O_NONBLOCK socket.
        Ok(false)
    }

    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    fn into_fd(self) -> Result<OwnedFd, (io::Error, Self)> {
        if self.holds_received() {
            let err = io::Error::new(
                io::ErrorKind::InvalidInput,
                "the runtime holds or may still receive data for this socket (io_uring reads \
                 through a multishot receive once a socket has been read): only a socket not \
                 read yet can be handed over",
            );
            return Err((err, self));
        }
        // A copy of the fd: the original closes behind any request still queued for it (a
        // dropped operation's cancel), so no such request can reach a reused fd number.
        match self.fd.as_ref().map(|fd| fd.try_clone()) {
            Some(Ok(fd)) => Ok(fd),
            Some(Err(e)) => Err((e, self)),
            None => unreachable!("the fd is taken only while dropping"),
        }
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
                if let Some(kept) = unsafe { self.take_salvaged(code.kind(), cx.waker()) } {
                    self.count_salvaged(&kept);
                    return kept;
                }
                // SAFETY: as above.
                match unsafe { self.read_received(code.kind(), cx, false) } {
                    Received::Answered(done) => return done,
                    Received::OneShot => self.count(|m| &m.one_shot_receives),
                    Received::Late => self.count_on_owner(|m| &m.late_receives),
                    Received::NotARead => {}
                }
                let message = matches!(code.kind(), OpKind::RecvMessage { .. });
                if message && self.holds_received() {
                    // The message would overtake bytes already received for the stream.
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "a message (with fds or an address) cannot be received on a stream \
                         whose bytes are already being received by plain reads; on io_uring, \
                         read a stream that carries fds with message receives only",
                    )));
                }
                let fd = self.as_raw_fd();
                let may_zero_copy = || self.may_zero_copy();
                let slot = &self.slot;
                match self.on_owner(|ring| ring.start_op(fd, slot, code, cx.waker(), may_zero_copy))
                {
                    Some(key) => {
                        *state = RingOpState::Local(key);
                        Poll::Pending
                    }
                    None => self.start_handoff(state, code, cx),
                }
            }
            RingOpState::Local(key) => {
                let key = *key;
                match self.on_owner(|ring| ring.poll(key, cx.waker())) {
                    Some(Some(res)) => Poll::Ready(cqe_result(res)),
                    Some(None) => Poll::Pending,
                    None => self.migrate(state, key, cx),
                }
            }
            RingOpState::Handoff(op) => match op.0.poll(cx.waker()) {
                Some(res) => Poll::Ready(cqe_result(res)),
                None => Poll::Pending,
            },
        }
    }

    fn poll_lent(
        &self,
        op: &mut Lent<'_>,
        cx: &mut Context<'_>,
    ) -> Option<Poll<io::Result<usize>>> {
        // A write's memory must outlive its SQE: writes are staged by the caller into memory it
        // owns. A read copies what was kept or received, if it can, within this call.
        if !op.is_read() {
            return None;
        }
        op.with_kind(|kind| {
            // SAFETY: the lent pointers are valid until `with_kind` returns; the salvage and the
            // receive queue copy into them synchronously and keep no pointer.
            let res = unsafe {
                match self.take_salvaged(kind, cx.waker()) {
                    Some(kept) => {
                        self.count_salvaged(&kept);
                        Some(kept)
                    }
                    // Anything else goes to the kernel as the caller's own operation.
                    None => match self.read_received(kind, cx, true) {
                        Received::Answered(poll) => Some(poll),
                        _ => None,
                    },
                }
            };
            res.map(|poll| poll.map_ok(|n| n as usize))
        })
    }

    fn drop_op(&self, state: &mut RingOpState, code: &OpCode, keep_alive: Box<dyn Any + Send>) {
        self.count(|m| &m.cancels);
        match std::mem::take(state) {
            RingOpState::Idle => {}
            RingOpState::Local(key) => {
                let abandoned = Abandoned::new(code, self.salvage(), keep_alive);
                if self.owner_is_current() {
                    self.on_owner(|ring| ring.abandon(key, abandoned));
                } else {
                    self.owner.send(Handoff::Abandon { key, abandoned });
                }
            }
            RingOpState::Handoff(op) => {
                let abandoned = Abandoned::new(code, self.salvage(), keep_alive);
                if op.0.abandon(abandoned) {
                    // The reactor decides whether the kernel still has it.
                    self.owner.send(Handoff::Cancel(op.0));
                }
            }
        }
    }
}

impl Drop for RingSource {
    fn drop(&mut self) {
        let Some(fd) = self.fd.take() else { return };
        let received = self.received.take();
        let slot = self.slot.take();
        if self.owner_is_current() {
            self.on_owner(|ring| ring.release(fd, received, slot));
        } else {
            self.owner.send(Handoff::Release { fd, received, slot });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::OwnedFd;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use runtime_core::{ops, BufResult, Source};

    use super::RingSource;
    use crate::driver::RingDriver;
    use crate::ring::with_current;
    use crate::setup::RingConfig;

    /// Sets the reactor's load, as its next reap would.
    fn set_busy(busy: bool) {
        with_current(|ring| ring.shared.load.set_busy(busy)).expect("on the reactor");
    }

    /// One read of `source`, which must not wait for more bytes than were sent.
    async fn read(source: &RingSource) -> Vec<u8> {
        let read = ops::recv(source, Vec::with_capacity(64));
        let BufResult(res, buf) = runtime_core::timeout(Duration::from_secs(5), read)
            .await
            .expect("the read waited for new bytes while received ones were queued");
        res.expect("the read");
        buf
    }

    /// A read that received late while the reactor was busy lets the socket's next busy read
    /// skip the receive queue (`late_reads`), but a quiet read that arms a multishot receive
    /// ends that: the bytes that receive queues are read first, never overtaken by a late
    /// receive sent to the kernel.
    #[test]
    fn a_late_read_never_overtakes_bytes_a_multishot_receive_queued() {
        let driver = match RingDriver::new(&RingConfig::default()) {
            Ok(d) => d,
            Err(e) => return eprintln!("skipped: this kernel refuses io_uring: {e}"),
        };
        runtime_core::block_on(driver, async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (ours, _) = listener.accept().unwrap();
            let source = RingSource::new(OwnedFd::from(ours)).unwrap();
            let Some(queue) = source.received.clone() else {
                return eprintln!("skipped: no provided buffers on this kernel");
            };

            peer.write_all(b"one").unwrap();
            set_busy(true);
            assert_eq!(read(&source).await, b"one");
            assert!(
                source.late_reads.load(Ordering::Relaxed),
                "the busy read did not receive late"
            );

            set_busy(false);
            peer.write_all(b"two").unwrap();
            assert_eq!(read(&source).await, b"two");

            peer.write_all(b"three").unwrap();
            let queued = async {
                while queue.queued() == 0 {
                    runtime_core::yield_now().await;
                }
            };
            runtime_core::timeout(Duration::from_secs(5), queued)
                .await
                .expect("the armed multishot receive did not queue the bytes");
            set_busy(true);
            assert_eq!(read(&source).await, b"three");
        })
        .unwrap();
    }
}
