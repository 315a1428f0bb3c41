//! The driver of a build with both backends: one of them, chosen at startup.

use std::any::Any;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use backend_epoll::{EpollDriver, EpollOpState, EpollSource};
use backend_uring::{RingDriver, RingOpState, RingSource};
use runtime_core::{Driver, EnterGuard, Lent, OpCode, ReactorHandle, Source, Unpark};

/// Either driver.
#[derive(Debug)]
pub enum AutoDriver {
    /// The io_uring driver.
    Uring(RingDriver),
    /// The epoll driver.
    Epoll(EpollDriver),
}

impl From<RingDriver> for AutoDriver {
    fn from(d: RingDriver) -> Self {
        AutoDriver::Uring(d)
    }
}

impl From<EpollDriver> for AutoDriver {
    fn from(d: EpollDriver) -> Self {
        AutoDriver::Epoll(d)
    }
}

impl Driver for AutoDriver {
    type Source = AutoSource;

    fn name(&self) -> &'static str {
        match self {
            AutoDriver::Uring(d) => d.name(),
            AutoDriver::Epoll(d) => d.name(),
        }
    }

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            AutoDriver::Uring(d) => d.park(timeout),
            AutoDriver::Epoll(d) => d.park(timeout),
        }
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        match self {
            AutoDriver::Uring(d) => d.unparker(),
            AutoDriver::Epoll(d) => d.unparker(),
        }
    }

    fn enter(&self, reactor: &ReactorHandle) -> EnterGuard {
        match self {
            AutoDriver::Uring(d) => d.enter(reactor),
            AutoDriver::Epoll(d) => d.enter(reactor),
        }
    }
}

/// An fd registered with whichever driver runs on the thread that registered it.
#[derive(Debug)]
pub enum AutoSource {
    /// Registered with an io_uring driver.
    Uring(RingSource),
    /// Registered with an epoll driver.
    Epoll(EpollSource),
}

/// The operation state of either source.
#[derive(Debug, Default)]
pub struct AutoOpState {
    uring: RingOpState,
    epoll: EpollOpState,
}

// SAFETY: every call goes to the source of the backend that registered the fd, which upholds
// `Source`'s obligations itself; an operation's state is that backend's alone (a source never
// changes backend, so the other half of `AutoOpState` is never used).
#[allow(unsafe_code)]
unsafe impl Source for AutoSource {
    type OpState = AutoOpState;

    fn new(fd: OwnedFd) -> io::Result<Self> {
        if backend_uring::is_current() {
            RingSource::new(fd).map(AutoSource::Uring)
        } else if backend_epoll::is_current() {
            EpollSource::new(fd).map(AutoSource::Epoll)
        } else {
            Err(runtime_core::not_on_a_reactor())
        }
    }

    fn adopt(&self, fd: OwnedFd) -> io::Result<Self> {
        match self {
            AutoSource::Uring(s) => s.adopt(fd).map(AutoSource::Uring),
            AutoSource::Epoll(s) => s.adopt(fd).map(AutoSource::Epoll),
        }
    }

    fn nonblocking() -> io::Result<bool> {
        if backend_uring::is_current() {
            RingSource::nonblocking()
        } else if backend_epoll::is_current() {
            EpollSource::nonblocking()
        } else {
            Err(runtime_core::not_on_a_reactor())
        }
    }

    fn as_raw_fd(&self) -> RawFd {
        match self {
            AutoSource::Uring(s) => s.as_raw_fd(),
            AutoSource::Epoll(s) => s.as_raw_fd(),
        }
    }

    fn into_fd(self) -> Result<OwnedFd, (io::Error, Self)> {
        match self {
            AutoSource::Uring(s) => s.into_fd().map_err(|(e, s)| (e, AutoSource::Uring(s))),
            AutoSource::Epoll(s) => s.into_fd().map_err(|(e, s)| (e, AutoSource::Epoll(s))),
        }
    }

    fn poll_op(
        &self,
        state: &mut AutoOpState,
        code: &OpCode,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        match self {
            AutoSource::Uring(s) => s.poll_op(&mut state.uring, code, cx),
            AutoSource::Epoll(s) => s.poll_op(&mut state.epoll, code, cx),
        }
    }

    fn poll_lent(
        &self,
        op: &mut Lent<'_>,
        cx: &mut Context<'_>,
    ) -> Option<Poll<io::Result<usize>>> {
        match self {
            AutoSource::Uring(s) => s.poll_lent(op, cx),
            AutoSource::Epoll(s) => s.poll_lent(op, cx),
        }
    }

    fn drop_op(&self, state: &mut AutoOpState, code: &OpCode, keep_alive: Box<dyn Any + Send>) {
        match self {
            AutoSource::Uring(s) => s.drop_op(&mut state.uring, code, keep_alive),
            AutoSource::Epoll(s) => s.drop_op(&mut state.epoll, code, keep_alive),
        }
    }
}
