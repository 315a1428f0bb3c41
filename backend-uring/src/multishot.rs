//! Multishot receive: one armed `RECV` per socket that keeps filling provided buffers as data
//! arrives, so a read finds its bytes already received instead of submitting a `RECV`, waiting,
//! and re-arming the socket's poll for every message.
//!
//! An await-per-operation loop (read, then write, then read again) otherwise costs two
//! `io_uring_enter` per request: the write's completion must be seen before the next read is
//! submitted, and that read then waits in its own enter. With the receive armed once, a
//! request costs one enter (the write is submitted while waiting for the next data).
//!
//! Each socket keeps a [`RecvQueue`]: the buffers its multishot receive filled and the reader
//! has not taken yet, in order. A read takes from it (on any thread), waits on it while the
//! receive is armed, or arms it. The queue is bounded: past [`MAX_QUEUED`] buffers the receive
//! is cancelled, so a socket that is not read holds at most that much memory, and the TCP
//! window pushes back on the peer as it would without multishot. When the ring's buffers run
//! out (`ENOBUFS`) or the kernel refuses multishot, the next read is a one-shot receive into
//! the caller's own buffer.
//!
//! Under load a one-shot receive is the cheaper one (late receives, [`Load`]): every arrival
//! for an armed multishot receive costs the kernel a poll wakeup and an item of deferred task
//! work, while a `RECV` submitted at the end of a long turn finds its data already there and
//! completes inside the submission. So while the reactor is busy, reads that would arm a
//! receive receive late instead, and an armed receive that delivers is cancelled; a read
//! arms again once the reactor is quiet.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};

use io_uring::{cqueue, opcode, squeue};
use parking_lot::Mutex;
use runtime_core::OpKind;

use crate::framing::{Framing, Wants};
use crate::provided::{BufferRings, ProvidedBuffers};
use crate::user_data::UserData;

/// Buffers a socket may hold before its receive is cancelled.
pub(crate) const MAX_QUEUED: usize = 8;

/// From how many completions in one reap the reactor counts as busy: a turn that long takes
/// long enough for the next request on a connection to arrive before its end (at a 1,000-
/// connection closed loop a busy turn serves about 15 requests, 30 completions).
pub(crate) const BUSY_FROM: usize = 32;

/// How busy the reactor is, as its last reap of the completion queue says (the reactor's,
/// in `RingShared`); read by its sockets' reads to choose between a multishot and a late
/// one-shot receive.
#[derive(Debug, Default)]
pub(crate) struct Load {
    /// Late receives are on (`RingConfig::late_receive`).
    late_receive: bool,
    busy: AtomicBool,
}

impl Load {
    pub(crate) fn new(late_receive: bool) -> Self {
        Load {
            late_receive,
            busy: AtomicBool::new(false),
        }
    }

    /// The reactor took `completions` off its completion queue at once: busy from
    /// [`BUSY_FROM`] on, until a smaller reap (only with late receives on).
    pub(crate) fn reaped(&self, completions: usize) {
        if self.late_receive {
            self.busy.store(completions >= BUSY_FROM, Ordering::Relaxed);
        }
    }

    /// Whether reads should receive late rather than through a multishot receive.
    pub(crate) fn busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    /// Sets the load as a reap would have.
    #[cfg(test)]
    pub(crate) fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
    }
}

/// A part of a buffer the kernel filled, partly read perhaps.
struct Filled {
    bid: u16,
    /// Where the part starts in the buffer (0 but in an incrementally consumed buffer).
    offset: usize,
    len: usize,
    taken: usize,
}

#[derive(Default)]
struct QueueState {
    /// What the socket receives: bytes or datagrams (decided by its first read).
    framing: Framing,
    filled: VecDeque<Filled>,
    /// A multishot receive is in flight (its final CQE, without `F_MORE`, has not come).
    armed: bool,
    /// The armed receive is a bundle (which kernels before 6.17 refuse, for its length cap).
    armed_bundle: bool,
    /// A cancel was sent for the armed receive (the queue is full, the reactor is busy, or the
    /// socket is gone).
    cancelling: bool,
    /// How the stream ended (0: end of file, negative: an errno), returned once the filled
    /// buffers are read. End of file stays; an error is returned once.
    end: Option<i32>,
    /// The last receive ended for want of buffers: the next read is a one-shot receive.
    one_shot_next: bool,
    /// The socket is read through the poll-based adapter's lent path (`RecvQueue::poll_read`'s
    /// `lent`): it never receives late, and its receive is not cancelled for load.
    lent: bool,
    /// The reader waiting for data (a socket has one reader at a time, normally).
    waiter: Option<Waker>,
    /// Further concurrent readers, rare: kept so that none of them misses the data.
    more_waiters: Vec<Waker>,
}

impl QueueState {
    /// The cancel of the armed receive named `user_data`, unless one is already on its way.
    fn start_cancel(&mut self, user_data: u64) -> Option<squeue::Entry> {
        if !self.armed || self.cancelling {
            return None;
        }
        self.cancelling = true;
        Some(opcode::AsyncCancel::new(user_data).build())
    }

    fn add_waiter(&mut self, waker: &Waker) {
        match &self.waiter {
            None => self.waiter = Some(waker.clone()),
            Some(w) if w.will_wake(waker) => {}
            Some(_) => {
                if !self.more_waiters.iter().any(|w| w.will_wake(waker)) {
                    self.more_waiters.push(waker.clone());
                }
            }
        }
    }
}

/// What a read should do, when the queue cannot answer it.
pub(crate) enum Step {
    /// Submit this SQE: the socket's multishot receive.
    Arm(squeue::Entry),
    /// Read with a one-shot receive into the caller's buffer.
    OneShot,
    /// Read with a one-shot receive, the reactor being busy (a late receive).
    Late,
}

/// One socket's received-but-unread buffers.
pub(crate) struct RecvQueue {
    rings: Arc<BufferRings>,
    state: Mutex<QueueState>,
}

impl RecvQueue {
    pub(crate) fn new(rings: Arc<BufferRings>) -> Arc<Self> {
        Arc::new(RecvQueue {
            rings,
            state: Mutex::new(QueueState::default()),
        })
    }

    /// The buffer ring a queue of `framing` receives into.
    fn buffers(&self, framing: &Framing) -> &ProvidedBuffers {
        match framing {
            Framing::Datagram(_) => self.rings.datagram.as_ref().expect("decided with the ring"),
            _ => &self.rings.stream,
        }
    }

    /// Whether received bytes wait to be read, or the armed receive may still bring some.
    pub(crate) fn holds(&self) -> bool {
        let st = self.state.lock();
        st.armed || !st.filled.is_empty()
    }

    /// How many filled buffers wait to be read.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.state.lock().filled.len()
    }

    fn user_data(self: &Arc<Self>) -> u64 {
        UserData::Receive(Arc::as_ptr(self) as usize).encode()
    }

    /// A read of `kind` (`Recv` or `RecvMsg` on a stream, `RecvMessage` on a UDP socket) on the
    /// socket `fd`: its result if buffers are queued or the stream ended, `Pending` while the
    /// armed receive may still deliver (being cancelled too: a read never overtakes it), or
    /// what to do instead: arm it, or a one-shot receive (late while the reactor is busy).
    /// `may_arm` is false off the owning reactor (which alone submits); `busy`, that reactor's
    /// [`Load`]; `lent`, the read lends its memory for this call only (the poll-based adapter,
    /// as hyper reads), which makes the socket one that never receives late. Measured with
    /// hyper at 256 connections, its late receives never found their data (one poll armed per
    /// request), and each cost a boxed owned receive besides, so such a socket keeps its
    /// multishot receive armed.
    ///
    /// # Safety
    /// `kind`'s pointers must be valid for writing the lengths they give.
    pub(crate) unsafe fn poll_read(
        self: &Arc<Self>,
        fd: i32,
        kind: &OpKind,
        waker: &Waker,
        may_arm: bool,
        busy: bool,
        lent: bool,
    ) -> Result<Poll<io::Result<u32>>, Step> {
        let mut st = self.state.lock();
        st.lent |= lent;
        let wants = Wants::of(kind);
        if !st.framing.serves(wants) {
            if !(st.framing.is_undecided() && may_arm) {
                return Err(Step::OneShot);
            }
            st.framing = Framing::decide(fd, wants, self.rings.datagram.is_some());
            if !st.framing.serves(wants) {
                return Err(Step::OneShot);
            }
        }
        if !st.filled.is_empty() {
            // SAFETY: the caller's promise on `kind`.
            let res = unsafe { self.copy_out(&mut st, kind) };
            return Ok(Poll::Ready(res));
        }
        match st.end {
            Some(0) => return Ok(Poll::Ready(Ok(0))),
            Some(errno) => {
                st.end = None;
                return Ok(Poll::Ready(Err(io::Error::from_raw_os_error(-errno))));
            }
            None => {}
        }
        if st.armed {
            st.add_waiter(waker);
            return Ok(Poll::Pending);
        }
        if st.one_shot_next || !may_arm || !self.buffers(&st.framing).multishot_allowed() {
            st.one_shot_next = false;
            return Err(Step::OneShot);
        }
        if busy && !st.lent {
            return Err(Step::Late);
        }
        st.armed = true;
        st.add_waiter(waker);
        let (entry, bundle) = st.framing.arm(fd, &self.rings);
        st.armed_bundle = bundle;
        drop(st);
        // The SQE holds one strong count until the receive's final CQE.
        let user_data = UserData::Receive(Arc::into_raw(self.clone()) as usize).encode();
        Err(Step::Arm(entry.user_data(user_data)))
    }

    /// Copies what is queued into the read's memory, giving back the buffers emptied: bytes
    /// across buffers for a stream, the first datagram for a datagram socket.
    ///
    /// # Safety
    /// `kind`'s pointers must be valid for writing the lengths they give.
    unsafe fn copy_out(&self, st: &mut QueueState, kind: &OpKind) -> io::Result<u32> {
        if let Framing::Datagram(template) = &st.framing {
            let buffers = self.buffers(&st.framing);
            let front = st.filled.front().expect("checked by the caller");
            // SAFETY: the queue holds `front.bid`, which the kernel filled with `front.len`
            // bytes; `kind`'s pointers are valid (the caller's promise).
            let copied = unsafe {
                let datagram = buffers.filled(front.bid, front.offset, front.len);
                crate::framing::copy_datagram(datagram, template, kind)
            };
            // A datagram that cannot be read (an error) is consumed too, or it would fail
            // every later read.
            if copied.as_ref().map_or(true, |&(_, consumed)| consumed) {
                let bid = front.bid;
                st.filled.pop_front();
                buffers.release(bid);
            }
            return copied.map(|(n, _)| n);
        }
        let buffers = &self.rings.stream;
        let mut total = 0usize;
        let mut fill = |dst: *mut u8, cap: usize| {
            let mut done = 0;
            while done < cap {
                let Some(front) = st.filled.front_mut() else {
                    break;
                };
                // SAFETY: the queue holds `front.bid` (a CQE named it; it is given back only
                // below) and the kernel wrote `front.len` bytes into it.
                let src = unsafe { buffers.filled(front.bid, front.offset, front.len) };
                let n = (cap - done).min(front.len - front.taken);
                // SAFETY: `dst` is valid for `cap` bytes (the caller's promise) and the two
                // ranges do not overlap (ours vs the caller's memory).
                unsafe {
                    std::ptr::copy_nonoverlapping(src[front.taken..].as_ptr(), dst.add(done), n)
                };
                front.taken += n;
                done += n;
                if front.taken == front.len {
                    let bid = front.bid;
                    st.filled.pop_front();
                    buffers.release(bid);
                }
            }
            done
        };
        match *kind {
            OpKind::Recv { buf, len } => total += fill(buf, len as usize),
            OpKind::RecvMsg { msg } => {
                // SAFETY: `msg` and its iovecs are valid (the caller's promise).
                for iov in unsafe { crate::salvage::iovecs(msg) } {
                    let n = fill(iov.iov_base.cast(), iov.iov_len);
                    total += n;
                    if n < iov.iov_len {
                        break;
                    }
                }
            }
            _ => unreachable!("only reads take from the receive queue"),
        }
        Ok(total as u32)
    }

    /// The cancel for the armed receive, if one is armed and not yet being cancelled.
    pub(crate) fn cancel(self: &Arc<Self>) -> Option<squeue::Entry> {
        self.state.lock().start_cancel(self.user_data())
    }
}

/// What the driver must do after a multishot CQE.
pub(crate) struct Completion {
    /// The receive is over: the SQE's strong count was released.
    pub(crate) finished: bool,
    /// The completion was a bundle: it named more than one buffer.
    pub(crate) bundle: bool,
    /// The completion filled part of a buffer an earlier one had started (incremental).
    pub(crate) shared: bool,
    /// The socket's queue is full, or the reactor is busy (late receives): submit this cancel.
    pub(crate) cancel: Option<squeue::Entry>,
    /// The reader to wake, once the driver has finished with the completion queue.
    pub(crate) waiter: Option<Waker>,
    /// Further readers to wake (rare: the vector is allocated only if used).
    pub(crate) more_waiters: Vec<Waker>,
}

/// Hands a multishot receive's CQE to its socket's queue.
///
/// # Safety
/// `addr` must be a multishot receive's queue, named by user data made by
/// [`RecvQueue::poll_read`], whose final CQE has not been handled yet. `busy` is the reactor's
/// [`Load`].
pub(crate) unsafe fn complete(addr: usize, result: i32, flags: u32, busy: bool) -> Completion {
    let ptr = addr as *const RecvQueue;
    let user_data = UserData::Receive(addr).encode();
    let more = cqueue::more(flags);
    // SAFETY: the SQE's strong count keeps the queue alive until its final CQE (this one at the
    // latest), per the caller's promise.
    let queue = unsafe { &*ptr };
    let mut st = queue.state.lock();
    let mut buffers = 0;
    let mut shared = false;
    if result > 0 {
        match cqueue::buffer_select(flags) {
            Some(bid) => {
                let QueueState {
                    filled, framing, ..
                } = &mut *st;
                let whole = queue.buffers(framing).filled_by(
                    bid,
                    result as usize,
                    flags,
                    |bid, offset, len| {
                        buffers += 1;
                        shared |= offset > 0;
                        filled.push_back(Filled {
                            bid,
                            offset,
                            len,
                            taken: 0,
                        })
                    },
                );
                if !whole {
                    st.end = Some(-libc::EIO);
                }
            }
            None => st.end = Some(-libc::EIO),
        }
    } else if result == 0 {
        st.end = Some(0);
    } else if result == -libc::ENOBUFS {
        st.one_shot_next = true;
    } else if result == -libc::EINVAL && st.armed_bundle {
        // The next read arms a plain multishot receive.
        queue.rings.refuse_bundles();
    } else if result == -libc::EINVAL {
        queue.buffers(&st.framing).refuse_multishot();
        st.one_shot_next = true;
    } else if !(result == -libc::ECANCELED && st.cancelling) {
        st.end = Some(result);
    }
    let mut cancel = None;
    if !more {
        st.armed = false;
        st.cancelling = false;
    } else if st.filled.len() >= MAX_QUEUED || (result > 0 && busy && !st.lent) {
        // Full, or the reactor is busy: the next reads receive late (or after the reader
        // catches up), in order behind what is queued.
        cancel = st.start_cancel(user_data);
    }
    let waiter = st.waiter.take();
    let more_waiters = std::mem::take(&mut st.more_waiters);
    drop(st);
    if !more {
        // SAFETY: the final CQE: take back the count `poll_read` gave the SQE, once.
        drop(unsafe { Arc::from_raw(ptr) });
    }
    Completion {
        finished: !more,
        bundle: buffers > 1,
        shared,
        cancel,
        waiter,
        more_waiters,
    }
}

impl Drop for RecvQueue {
    fn drop(&mut self) {
        let st = self.state.get_mut();
        let buffers = match &st.framing {
            Framing::Datagram(_) => self.rings.datagram.as_ref(),
            _ => Some(&self.rings.stream),
        };
        for f in st.filled.drain(..) {
            buffers
                .expect("a queue with buffers has their ring")
                .release(f.bid);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::provided::StreamBuffers;

    /// A ring with buffer rings registered for `mode`, or `None` (saying why) where the kernel
    /// has neither.
    fn registered(mode: StreamBuffers) -> Option<(io_uring::IoUring, BufferRings)> {
        let Ok(ring) = io_uring::IoUring::new(8) else {
            eprintln!("skipped: io_uring unavailable");
            return None;
        };
        let Ok(rings) = BufferRings::register(&ring, mode) else {
            eprintln!("skipped: no buffer rings");
            return None;
        };
        Some((ring, rings))
    }

    /// Arms `queue`'s receive for a read of `buf` on `fd` (on a reactor `busy` or not);
    /// returns the receive's address.
    fn arm(queue: &Arc<RecvQueue>, fd: i32, buf: &mut [u8], busy: bool) -> usize {
        armed(read(queue, fd, buf, busy))
    }

    /// The address of the receive a read's step arms.
    fn armed(step: Result<Poll<io::Result<u32>>, Step>) -> usize {
        let Err(Step::Arm(entry)) = step else {
            panic!("a read of an empty queue arms its receive")
        };
        match UserData::decode(entry.get_user_data()) {
            UserData::Receive(addr) => addr,
            _ => panic!("a receive's user data"),
        }
    }

    /// Kernels before 6.17 refuse a length on a multishot receive: a refused bundle makes the
    /// ring arm plain multishot receives, not give up multishot.
    #[test]
    fn a_refused_bundle_falls_back_to_plain_multishot_receives() {
        let Some((ring, rings)) = registered(StreamBuffers::Bundles) else {
            return;
        };
        let rings = Arc::new(rings);
        if !rings.bundles() {
            return eprintln!("skipped: no receive bundles here");
        }
        let (socket, _peer) = std::os::unix::net::UnixStream::pair().expect("pair");
        let queue = RecvQueue::new(rings.clone());
        let mut buf = [0u8; 16];

        let addr = arm(&queue, socket.as_raw_fd(), &mut buf, false);
        assert!(queue.state.lock().armed_bundle);
        // SAFETY: the receive just armed (never submitted); this is its final CQE.
        let done = unsafe { complete(addr, -libc::EINVAL, 0, false) };
        assert!(done.finished);
        assert!(
            !rings.bundles(),
            "bundles still used after the kernel refused one"
        );
        assert!(
            rings.stream.multishot_allowed(),
            "multishot given up for a bundle"
        );

        let addr = arm(&queue, socket.as_raw_fd(), &mut buf, false);
        assert!(!queue.state.lock().armed_bundle, "armed as a bundle again");
        // SAFETY: as above.
        let done = unsafe { complete(addr, -libc::ECANCELED, 0, false) };
        assert!(done.finished);
        rings.unregister(&ring);
    }

    /// A read of `buf` on `fd` through `queue`, on a reactor `busy` or not.
    fn read(
        queue: &Arc<RecvQueue>,
        fd: i32,
        buf: &mut [u8],
        busy: bool,
    ) -> Result<Poll<io::Result<u32>>, Step> {
        read_as(queue, fd, buf, busy, false)
    }

    /// [`read`], `lent` or not (the poll-based adapter's reads are).
    fn read_as(
        queue: &Arc<RecvQueue>,
        fd: i32,
        buf: &mut [u8],
        busy: bool,
        lent: bool,
    ) -> Result<Poll<io::Result<u32>>, Step> {
        let kind = OpKind::Recv {
            buf: buf.as_mut_ptr(),
            len: buf.len() as u32,
        };
        // SAFETY: `buf` is valid for its length for the call, and nothing is submitted.
        unsafe { queue.poll_read(fd, &kind, Waker::noop(), true, busy, lent) }
    }

    /// `IORING_CQE_F_BUFFER` and `IORING_CQE_F_MORE`, with buffer `bid` above them: a made-up
    /// receive CQE. Nothing is submitted on the tests' rings, and each is unregistered at the
    /// end, so the buffers such CQEs name (never taken by the kernel) and that reads give back
    /// reach no receive.
    fn filled(bid: u32) -> u32 {
        1 | 1 << 1 | bid << 16
    }

    /// Runs `test` on the plain stream queue of a socket of its own, over a test ring's
    /// buffers (unregistered after), with the load of a reactor that just reaped enough to be
    /// busy, and has late receives on or not; skipped where the kernel has no buffer rings.
    fn on_a_busy_reactor(late_receive: bool, test: impl FnOnce(&Arc<RecvQueue>, i32, &Load)) {
        let Some((ring, rings)) = registered(StreamBuffers::Plain) else {
            return;
        };
        let rings = Arc::new(rings);
        let (socket, _peer) = std::os::unix::net::UnixStream::pair().expect("pair");
        let load = Load::new(late_receive);
        load.reaped(BUSY_FROM);
        test(&RecvQueue::new(rings.clone()), socket.as_raw_fd(), &load);
        rings.unregister(&ring);
    }

    /// The receive at `addr` (armed, not finished) delivers 5 bytes into buffer 2 under `load`:
    /// it is not cancelled (`who` says whose it is), and a read gets the bytes.
    fn delivers_and_stays_armed(
        queue: &Arc<RecvQueue>,
        fd: i32,
        addr: usize,
        load: &Load,
        who: &str,
    ) {
        // SAFETY: the caller's promise on `addr`.
        let done = unsafe { complete(addr, 5, filled(2), load.busy()) };
        assert!(done.cancel.is_none(), "{who}: the receive was cancelled");
        let got = read(queue, fd, &mut [0u8; 16], load.busy());
        assert!(
            matches!(got, Ok(Poll::Ready(Ok(5)))),
            "{who}: the bytes not read"
        );
    }

    /// While the reactor is busy, a read that would arm a receive receives late instead, and
    /// an armed receive that delivers is cancelled, its bytes read first, and no read goes
    /// late until its final CQE; once the reactor is quiet a read arms again.
    #[test]
    fn a_busy_reactor_receives_late_and_a_quiet_one_arms_again() {
        on_a_busy_reactor(true, |queue, fd, load| {
            let mut buf = [0u8; 16];
            assert!(matches!(
                read(queue, fd, &mut buf, load.busy()),
                Err(Step::Late)
            ));
            load.reaped(BUSY_FROM - 1);
            let addr = arm(queue, fd, &mut buf, load.busy());

            delivers_and_stays_armed(queue, fd, addr, load, "a quiet reactor");

            load.reaped(BUSY_FROM);
            // SAFETY: as above.
            let done = unsafe { complete(addr, 5, filled(3), load.busy()) };
            assert!(!done.finished);
            assert!(
                done.cancel.is_some(),
                "a busy reactor kept its multishot receive"
            );
            assert!(
                matches!(
                    read(queue, fd, &mut buf, load.busy()),
                    Ok(Poll::Ready(Ok(5)))
                ),
                "the queued bytes come first"
            );
            // Until its final CQE the cancelled receive may still deliver: a read waits for
            // it rather than receive late beside it, perhaps ahead of its bytes.
            let got = read(queue, fd, &mut buf, load.busy());
            assert!(matches!(got, Ok(Poll::Pending)));
            // SAFETY: as above.
            let done = unsafe { complete(addr, -libc::ECANCELED, 0, load.busy()) };
            assert!(done.finished);
            assert!(matches!(
                read(queue, fd, &mut buf, load.busy()),
                Err(Step::Late)
            ));

            load.reaped(0);
            let addr = arm(queue, fd, &mut buf, load.busy());
            // SAFETY: as above.
            assert!(unsafe { complete(addr, -libc::ECANCELED, 0, load.busy()) }.finished);
        });
    }

    /// A socket read through the lent path (the poll-based adapter) never receives late: on a
    /// busy reactor its read arms the receive, a delivery keeps it armed, and later reads of
    /// the socket, lent or not, do not go late either.
    #[test]
    fn a_socket_read_lent_keeps_its_multishot_receive_under_load() {
        on_a_busy_reactor(true, |queue, fd, load| {
            let mut buf = [0u8; 16];
            let addr = armed(read_as(queue, fd, &mut buf, load.busy(), true));
            delivers_and_stays_armed(queue, fd, addr, load, "a lent socket");
            let got = read(queue, fd, &mut buf, load.busy());
            assert!(
                matches!(got, Ok(Poll::Pending)),
                "not waiting on the receive"
            );
            // The receive ends with 3 more bytes (a final CQE: no `F_MORE`).
            // SAFETY: as above.
            assert!(unsafe { complete(addr, 3, filled(3) & !(1 << 1), load.busy()) }.finished);
            let got = read(queue, fd, &mut buf, load.busy());
            assert!(matches!(got, Ok(Poll::Ready(Ok(3)))));
            // Still busy: an owned read of this socket arms again, and does not go late.
            let addr = arm(queue, fd, &mut buf, load.busy());
            // SAFETY: as above.
            assert!(unsafe { complete(addr, -libc::ECANCELED, 0, load.busy()) }.finished);
        });
    }

    /// With late receives off, a busy reactor's reads arm their receive, and keep it armed
    /// when it delivers.
    #[test]
    fn with_late_receives_off_load_changes_nothing() {
        on_a_busy_reactor(false, |queue, fd, load| {
            let mut buf = [0u8; 16];
            let addr = arm(queue, fd, &mut buf, load.busy());
            delivers_and_stays_armed(queue, fd, addr, load, "late receives off");
            // SAFETY: the receive armed above, not finished before.
            assert!(unsafe { complete(addr, -libc::ECANCELED, 0, load.busy()) }.finished);
        });
    }
}
