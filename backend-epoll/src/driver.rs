//! The epoll driver: one `mio::Poll` per reactor.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Poll, Registry, Token, Waker};
use parking_lot::Mutex;
use runtime_core::{Driver, EnterGuard, ReactorHandle, Unpark};
use slab::Slab;

use crate::readiness::ScheduledIo;
use crate::source::EpollSource;

/// The token of the driver's own wake eventfd.
const WAKE_TOKEN: Token = Token(usize::MAX);

/// Events taken from the kernel per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 1024;

/// What sources registered on this driver share with it.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) registry: Registry,
    /// Registered fds by token.
    pub(crate) sources: Mutex<Slab<Arc<ScheduledIo>>>,
    /// The reactor running this driver, once entered: its counters.
    pub(crate) reactor: std::sync::OnceLock<ReactorHandle>,
}

impl Inner {
    /// The running reactor's counters, if it has started.
    pub(crate) fn metrics(&self) -> Option<&runtime_core::Metrics> {
        self.reactor.get().map(ReactorHandle::metrics)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Inner>>> = const { RefCell::new(None) };
}

/// The driver entered on the calling thread.
pub(crate) fn current() -> io::Result<Arc<Inner>> {
    CURRENT
        .with(|c| c.borrow().clone())
        .ok_or_else(|| io::Error::other("no epoll runtime is running on this thread"))
}

/// Whether an epoll driver is entered on the calling thread.
pub fn is_current() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// A readiness driver over epoll (edge-triggered, through mio).
#[derive(Debug)]
pub struct EpollDriver {
    poll: Poll,
    events: Events,
    inner: Arc<Inner>,
    waker: Arc<WakeHandle>,
}

#[derive(Debug)]
struct WakeHandle(Waker);

impl Unpark for WakeHandle {
    fn unpark(&self) {
        // A failed eventfd write means the counter is saturated: a wake is pending anyway.
        let _ = self.0.wake();
    }
}

impl EpollDriver {
    /// Creates the epoll instance and its wake eventfd.
    pub fn new() -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(WakeHandle(Waker::new(poll.registry(), WAKE_TOKEN)?));
        let inner = Arc::new(Inner {
            registry: poll.registry().try_clone()?,
            sources: Mutex::new(Slab::new()),
            reactor: std::sync::OnceLock::new(),
        });
        Ok(EpollDriver {
            poll,
            events: Events::with_capacity(EVENTS_PER_WAIT),
            inner,
            waker,
        })
    }
}

impl Driver for EpollDriver {
    type Source = EpollSource;

    fn name(&self) -> &'static str {
        "epoll"
    }

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if let Some(m) = self.inner.metrics() {
            m.driver_waits.add_local(1);
        }
        self.poll.poll(&mut self.events, timeout)?;
        if self.events.is_empty() {
            return Ok(());
        }
        let sources = self.inner.sources.lock();
        for event in self.events.iter() {
            let Some(io) = sources.get(event.token().0) else {
                continue; // the wake token, or a source dropped since
            };
            let error = event.is_error();
            if event.is_readable() || event.is_read_closed() || error {
                io.read.wake(event.is_read_closed() || error);
            }
            if event.is_writable() || event.is_write_closed() || error {
                io.write.wake(event.is_write_closed() || error);
            }
        }
        Ok(())
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.waker.clone()
    }

    fn enter(&self, reactor: &ReactorHandle) -> EnterGuard {
        let _ = self.inner.reactor.set(reactor.clone());
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.inner.clone()));
        EnterGuard::new(move || CURRENT.with(|c| *c.borrow_mut() = prev))
    }
}
