//! A registered fd of the epoll driver, and how it runs operations.

use std::any::Any;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll};

use mio::unix::SourceFd;
use mio::{Interest, Token};
use runtime_core::{Direction, Lent, OpCode, OpKind, Source};

use crate::attempt::{attempt, EpollOpState};
use crate::driver::{current, EpollShared};
use crate::readiness::{Readiness, ScheduledIo};

/// An fd registered (edge-triggered, both directions) with an [`EpollDriver`](crate::EpollDriver).
#[derive(Debug)]
pub struct EpollSource {
    fd: OwnedFd,
    /// A short read or write shows the socket ran dry (see [`drained`]): true for TCP only. A
    /// Unix stream stops a read early at bytes that carried fds, with more queued behind them.
    short_means_drained: bool,
    token: usize,
    io: Arc<ScheduledIo>,
    driver: Arc<EpollShared>,
}

impl EpollSource {
    fn count_syscall(&self) {
        if let Some(m) = self.driver.metrics() {
            m.direct_syscalls.add(1);
        }
    }

    fn readiness(&self, direction: Direction) -> &Readiness {
        match direction {
            Direction::Read => &self.io.read,
            Direction::Write => &self.io.write,
        }
    }
}

/// Whether a successful syscall shows the socket buffer ran dry: a TCP socket that reads or
/// writes less than asked has nothing more to give or no more room. Edge-triggered epoll reports
/// the next arrival (or drained send buffer) as a new event, so the next attempt can wait for it
/// instead of making a syscall only to hear `EAGAIN`.
fn drained(kind: &OpKind, n: u32) -> bool {
    match *kind {
        OpKind::Recv { len, .. } => n > 0 && n < len,
        OpKind::Send { len, .. } => n < len,
        OpKind::Accept { .. }
        | OpKind::Connect { .. }
        | OpKind::RecvMsg { .. }
        | OpKind::RecvMessage { .. }
        | OpKind::SendMsg { .. }
        | OpKind::Shutdown { .. } => false,
    }
}

impl EpollSource {
    /// Tries `kind`'s syscall while the fd may be ready; waits for readiness otherwise.
    ///
    /// # Safety
    /// `kind`'s pointers must be valid for its access for this call.
    unsafe fn poll_kind(
        &self,
        kind: &OpKind,
        state: &mut EpollOpState,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        let Some(direction) = kind.direction() else {
            self.count_syscall();
            // SAFETY: the caller's promise.
            return Poll::Ready(unsafe { attempt(self.fd.as_raw_fd(), kind, state) });
        };
        let readiness = self.readiness(direction);
        loop {
            let seen = readiness.snapshot();
            if !seen.is_ready() {
                if !self.driver.is_alive() {
                    return Poll::Ready(Err(io::Error::other(
                        "the runtime this socket was registered with has shut down",
                    )));
                }
                if readiness.wait(seen, cx.waker()) {
                    return Poll::Pending;
                }
                continue;
            }
            self.count_syscall();
            // SAFETY: the caller's promise.
            match unsafe { attempt(self.fd.as_raw_fd(), kind, state) } {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => readiness.clear(seen),
                Ok(n) => {
                    if self.short_means_drained && drained(kind, n) {
                        readiness.clear(seen);
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Registers `fd` (edge-triggered, both directions) with `driver`; `short_means_drained`
    /// says whether it is a TCP socket.
    fn register(
        driver: Arc<EpollShared>,
        fd: OwnedFd,
        short_means_drained: bool,
    ) -> io::Result<Self> {
        let io = Arc::new(ScheduledIo::default());
        let token = driver.sources.lock().insert(io.clone());
        let interest = Interest::READABLE | Interest::WRITABLE;
        let raw = fd.as_raw_fd();
        if let Err(e) = driver
            .registry
            .register(&mut SourceFd(&raw), Token(token), interest)
        {
            driver.sources.lock().remove(token);
            return Err(e);
        }
        Ok(EpollSource {
            fd,
            short_means_drained,
            token,
            io,
            driver,
        })
    }
}

// SAFETY: every operation is a synchronous syscall made inside `poll_op` (`attempt`), so the
// kernel uses an operation's pointers only during a poll, never after it returns; the fd is
// closed on drop, when no syscall on it can be running (they all borrow the source).
unsafe impl Source for EpollSource {
    type OpState = EpollOpState;

    fn new(fd: OwnedFd) -> io::Result<Self> {
        let driver = current().ok_or_else(runtime_core::not_on_a_reactor)?;
        let socket = socket2::SockRef::from(&fd);
        let tcp = matches!(socket.domain(), Ok(d) if d == socket2::Domain::IPV4 || d == socket2::Domain::IPV6)
            && matches!(socket.r#type(), Ok(t) if t == socket2::Type::STREAM);
        Self::register(driver, fd, tcp)
    }

    fn adopt(&self, fd: OwnedFd) -> io::Result<Self> {
        // An accepted connection is of its listener's family.
        Self::register(self.driver.clone(), fd, self.short_means_drained)
    }

    fn nonblocking() -> io::Result<bool> {
        Ok(true)
    }

    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn into_fd(self) -> Result<OwnedFd, (io::Error, Self)> {
        // Nothing is in flight between attempts. A copy of the fd (made first: if it fails,
        // the source is still whole and registered), then out of the epoll set, so that no
        // event of the socket's new owner reaches this driver; dropping the source closes the
        // original and frees its token.
        let copy = match self.fd.try_clone() {
            Ok(copy) => copy,
            Err(e) => return Err((e, self)),
        };
        let raw = self.fd.as_raw_fd();
        match self.driver.registry.deregister(&mut SourceFd(&raw)) {
            Ok(()) => Ok(copy),
            Err(e) => Err((e, self)),
        }
    }

    fn poll_op(
        &self,
        state: &mut EpollOpState,
        code: &OpCode,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        // SAFETY: `code`'s pointers are valid for its access (the `OpCode` invariant).
        unsafe { self.poll_kind(code.kind(), state, cx) }
    }

    fn poll_lent(
        &self,
        op: &mut Lent<'_>,
        cx: &mut Context<'_>,
    ) -> Option<Poll<io::Result<usize>>> {
        let mut state = EpollOpState::default();
        // SAFETY: the lent pointers are valid until `with_kind` returns, and the syscall is
        // over when `poll_kind` returns.
        let res = op.with_kind(|kind| unsafe { self.poll_kind(kind, &mut state, cx) });
        Some(res.map_ok(|n| n as usize))
    }

    fn drop_op(&self, _state: &mut EpollOpState, _code: &OpCode, keep_alive: Box<dyn Any + Send>) {
        if let Some(m) = self.driver.metrics() {
            m.cancels.add(1);
        }
        // Nothing is in flight between attempts: the kernel holds no pointer into the memory.
        drop(keep_alive);
    }
}

impl Drop for EpollSource {
    fn drop(&mut self) {
        // Out of the epoll set explicitly: closing our fd would not remove it while another fd
        // (a `dup` made before `from_std`) still names the socket. Then forget the token, so
        // no later event can reach it. (Already out after `into_fd`: the error is ignored.)
        let raw = self.fd.as_raw_fd();
        let _ = self.driver.registry.deregister(&mut SourceFd(&raw));
        self.driver.sources.lock().remove(self.token);
    }
}
