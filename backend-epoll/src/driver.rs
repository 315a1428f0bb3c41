//! The epoll driver: one `mio::Poll` per reactor.

use std::cell::RefCell;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Poll, Registry, Token, Waker};
use parking_lot::Mutex;
use runtime_core::{Driver, EnterGuard, LatencyBudget, ReactorHandle, Unpark};
use slab::Slab;

use crate::readiness::ScheduledIo;
use crate::source::EpollSource;

/// The token of the driver's own wake eventfd.
const WAKE_TOKEN: Token = Token(usize::MAX);

/// Events taken from the kernel per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 1024;

/// What sources registered on this driver share with it.
#[derive(Debug)]
pub(crate) struct EpollShared {
    pub(crate) registry: Registry,
    /// Registered fds by token.
    pub(crate) sources: Mutex<Slab<Arc<ScheduledIo>>>,
    /// The reactor running this driver, once entered: its counters.
    pub(crate) reactor: std::sync::OnceLock<ReactorHandle>,
    /// Cleared when the driver is dropped: no event will come any more.
    alive: std::sync::atomic::AtomicBool,
}

impl EpollShared {
    /// The running reactor's counters, if it has started.
    pub(crate) fn metrics(&self) -> Option<&runtime_core::Metrics> {
        self.reactor.get().map(ReactorHandle::metrics)
    }

    /// Whether the driver still runs (events may still come).
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(std::sync::atomic::Ordering::Acquire)
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<EpollShared>>> = const { RefCell::new(None) };
}

/// The driver entered on the calling thread.
pub(crate) fn current() -> Option<Arc<EpollShared>> {
    CURRENT.with(|c| c.borrow().clone())
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
    shared: Arc<EpollShared>,
    waker: Arc<WakeHandle>,
    /// The wakers one wait found ready (kept to reuse its allocation).
    woken: Vec<std::task::Waker>,
    /// Applied by a nap after a blocking wait that brought little.
    budget: Option<LatencyBudget>,
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
        let shared = Arc::new(EpollShared {
            registry: poll.registry().try_clone()?,
            sources: Mutex::new(Slab::new()),
            reactor: std::sync::OnceLock::new(),
            alive: std::sync::atomic::AtomicBool::new(true),
        });
        Ok(EpollDriver {
            poll,
            events: Events::with_capacity(EVENTS_PER_WAIT),
            shared,
            waker,
            woken: Vec::new(),
            budget: None,
        })
    }

    /// This driver with a latency budget: a blocking park that found fewer than
    /// [`BATCH`](runtime_core::BATCH) ready fds naps until the budget has passed since it
    /// began, then collects what came with an `epoll_wait` that does not block.
    pub fn with_latency_budget(mut self, budget: Option<Duration>) -> Self {
        self.budget = budget.and_then(LatencyBudget::new);
        self
    }

    /// One `epoll_wait` of at most `timeout`; wakes the waiters of what it found ready and
    /// returns how many fds that was.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        if let Some(m) = self.shared.metrics() {
            m.driver_waits.add_local(1);
        }
        self.poll.poll(&mut self.events, timeout)?;
        if self.events.is_empty() {
            return Ok(0);
        }
        // Waiters are collected under the lock and woken after it: a woken task may be dropped
        // right there (a pool task whose last waker this was), and its sockets' drops take the
        // lock again.
        let mut woken = std::mem::take(&mut self.woken);
        let mut ready = 0;
        {
            let sources = self.shared.sources.lock();
            for event in self.events.iter() {
                let Some(io) = sources.get(event.token().0) else {
                    continue; // the wake token, or a source dropped since
                };
                ready += 1;
                let error = event.is_error();
                if event.is_readable() || event.is_read_closed() || error {
                    io.read.ready(event.is_read_closed() || error, &mut woken);
                }
                if event.is_writable() || event.is_write_closed() || error {
                    io.write.ready(event.is_write_closed() || error, &mut woken);
                }
            }
        }
        for waker in woken.drain(..) {
            waker.wake();
        }
        self.woken = woken;
        Ok(ready)
    }
}

impl Drop for EpollDriver {
    fn drop(&mut self) {
        // Sockets may outlive their runtime (kept outside it, or on another thread). No event
        // will wake their waiters any more: mark them gone and wake every waiter, so that each
        // tries once more and then fails instead of waiting for ever.
        self.shared
            .alive
            .store(false, std::sync::atomic::Ordering::Release);
        let mut woken = Vec::new();
        for (_, io) in self.shared.sources.lock().iter() {
            io.read.ready(false, &mut woken);
            io.write.ready(false, &mut woken);
        }
        woken.into_iter().for_each(std::task::Waker::wake);
    }
}

impl Driver for EpollDriver {
    type Source = EpollSource;

    fn name(&self) -> &'static str {
        "epoll"
    }

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        LatencyBudget::park(self.budget, timeout, |timeout| self.wait(timeout))
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.waker.clone()
    }

    fn enter(&self, reactor: &ReactorHandle) -> EnterGuard {
        let _ = self.shared.reactor.set(reactor.clone());
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.shared.clone()));
        EnterGuard::new(move || CURRENT.with(|c| *c.borrow_mut() = prev))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::pin::pin;
    use std::sync::{mpsc, Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Duration;

    use runtime_core::{ops, Driver, Source};

    use super::{EpollDriver, CURRENT};
    use crate::EpollSource;

    fn socket_pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: `fds` has room for the two fds.
        let res = unsafe { libc::socketpair(libc::AF_UNIX, kind, 0, fds.as_mut_ptr()) };
        assert_eq!(res, 0, "socketpair");
        // SAFETY: the kernel just returned these fds; nothing else owns them.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    /// A waker whose wake drops a socket of the same driver, as waking a pool task that was
    /// already cancelled drops its future (and the sockets it held) inside the wake.
    struct DropsOnWake(Mutex<Option<EpollSource>>);

    impl Wake for DropsOnWake {
        fn wake(self: Arc<Self>) {
            drop(self.0.lock().expect("lock").take());
        }
    }

    /// A wake made by `park` may drop a socket, which takes the driver's source table: `park`
    /// must not hold it while waking.
    #[test]
    fn a_wake_that_drops_a_socket_does_not_deadlock() {
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let mut driver = EpollDriver::new().expect("epoll");
            let prev = CURRENT.with(|c| c.borrow_mut().replace(driver.shared.clone()));
            let (ours, peer) = socket_pair();
            let (other, _other_peer) = socket_pair();
            let reader = EpollSource::new(ours).expect("register");
            let victim = EpollSource::new(other).expect("register");
            let waker = Waker::from(Arc::new(DropsOnWake(Mutex::new(Some(victim)))));
            let mut read = pin!(ops::recv(&reader, vec![0u8; 16]));
            let mut cx = Context::from_waker(&waker);
            assert!(
                read.as_mut().poll(&mut cx).is_pending(),
                "nothing was sent yet"
            );
            let peer = std::os::fd::AsRawFd::as_raw_fd(&peer);
            // SAFETY: writes one byte from a live buffer to our own socket.
            let written = unsafe { libc::write(peer, [7u8].as_ptr().cast(), 1) };
            assert_eq!(written, 1);
            driver.park(Some(Duration::from_secs(5))).expect("park");
            assert!(matches!(read.as_mut().poll(&mut cx), Poll::Ready(_)));
            CURRENT.with(|c| *c.borrow_mut() = prev);
            let _ = done.send(reader.as_raw_fd());
        });
        finished
            .recv_timeout(Duration::from_secs(10))
            .expect("park deadlocked waking a waker that dropped a socket");
    }
}
