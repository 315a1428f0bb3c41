//! Unix signals as futures: `ctrl_c()` and `signal(kind)`, awaitable from any reactor or pool
//! thread, by any number of waiters at once, on every backend.
//!
//! The first listener of a signal installs a handler for it (`sigaction`, `SA_RESTART`). The
//! handler does only what is safe in a signal handler: it marks the signal pending and writes
//! its number to a pipe. One reader thread for the process reads the pipe and wakes every
//! waiter of the signals marked pending. A listener sees every delivery that happens after it
//! was created; deliveries that come while nobody polls are coalesced, as the kernel coalesces
//! them too.

use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll};

use parking_lot::Mutex;

use crate::sys::cvt;
use crate::waiters::{WaitSlot, Waiters};

/// Signal numbers this module can track (Linux has 64, plus 0).
const SIGNALS: usize = 65;

/// What the handler touches: atomics only.
struct Pending {
    raised: [AtomicBool; SIGNALS],
    /// The write end of the pipe, or -1 before it exists.
    pipe: AtomicI32,
}

static PENDING: Pending = Pending {
    raised: [const { AtomicBool::new(false) }; SIGNALS],
    pipe: AtomicI32::new(-1),
};

/// One signal's deliveries and waiters.
#[derive(Default)]
struct Slot {
    installed: AtomicBool,
    /// Deliveries seen by the reader so far.
    deliveries: AtomicU64,
    waiters: Waiters,
}

struct Registry {
    slots: Vec<Slot>,
    /// Serialises handler installation.
    install: Mutex<()>,
}

static REGISTRY: OnceLock<io::Result<Registry>> = OnceLock::new();

/// A kind of signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(i32);

impl SignalKind {
    /// `SIGINT` (Ctrl-C in a terminal).
    pub const fn interrupt() -> Self {
        SignalKind(libc::SIGINT)
    }
    /// `SIGTERM` (the polite request to stop: `kill`, systemd, container runtimes).
    pub const fn terminate() -> Self {
        SignalKind(libc::SIGTERM)
    }
    /// `SIGHUP`.
    pub const fn hangup() -> Self {
        SignalKind(libc::SIGHUP)
    }
    /// `SIGQUIT`.
    pub const fn quit() -> Self {
        SignalKind(libc::SIGQUIT)
    }
    /// `SIGUSR1`.
    pub const fn user_defined1() -> Self {
        SignalKind(libc::SIGUSR1)
    }
    /// `SIGUSR2`.
    pub const fn user_defined2() -> Self {
        SignalKind(libc::SIGUSR2)
    }
    /// `SIGWINCH`.
    pub const fn window_change() -> Self {
        SignalKind(libc::SIGWINCH)
    }
    /// `SIGPIPE`.
    pub const fn pipe() -> Self {
        SignalKind(libc::SIGPIPE)
    }
    /// Any signal by number; [`signal`] refuses the ones a process cannot or must not catch.
    pub const fn from_raw(signum: i32) -> Self {
        SignalKind(signum)
    }
    /// The signal number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }
}

/// The signals a handler cannot catch (`SIGKILL`, `SIGSTOP`) or must not (faults, whose
/// handler returning would re-run the faulting instruction).
fn forbidden(signum: i32) -> bool {
    matches!(
        signum,
        libc::SIGKILL | libc::SIGSTOP | libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE
    )
}

extern "C" fn on_signal(signum: libc::c_int) {
    // Only async-signal-safe work: atomics and `write`. `errno` is saved and restored, since
    // the interrupted code may be about to read it.
    // SAFETY: `__errno_location` returns the calling thread's errno, valid for the thread.
    let errno = unsafe { *libc::__errno_location() };
    if let Some(raised) = PENDING.raised.get(signum as usize) {
        raised.store(true, Ordering::SeqCst);
    }
    let fd = PENDING.pipe.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = signum as u8;
        // SAFETY: `fd` is the pipe's write end, open for the life of the process; a full pipe
        // (nonblocking) already holds a wake-up for the reader, so a failed write loses nothing.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

fn registry() -> io::Result<&'static Registry> {
    REGISTRY
        .get_or_init(start_reader)
        .as_ref()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen for signals: {e}")))
}

/// Makes the pipe and the reader thread.
fn start_reader() -> io::Result<Registry> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 just created both fds; nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: `write` is open; setting O_NONBLOCK on it changes only its own flags.
    cvt(unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) })?;
    std::thread::Builder::new()
        .name("runtime-signal".into())
        .spawn(move || read_deliveries(read))?;
    // The write end stays open for the life of the process: a handler may run at any time.
    PENDING
        .pipe
        .store(std::os::fd::IntoRawFd::into_raw_fd(write), Ordering::SeqCst);
    Ok(Registry {
        slots: (0..SIGNALS).map(|_| Slot::default()).collect(),
        install: Mutex::new(()),
    })
}

/// The reader thread: each byte on the pipe means some signal was raised; wake the waiters of
/// every signal marked pending.
fn read_deliveries(read: OwnedFd) {
    let mut bytes = [0u8; 64];
    loop {
        // SAFETY: `bytes` is valid for 64 bytes of writes; `read` is open.
        let n = unsafe { libc::read(read.as_raw_fd(), bytes.as_mut_ptr().cast(), bytes.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return;
        }
        let Some(Ok(registry)) = REGISTRY.get() else {
            continue;
        };
        for (signum, raised) in PENDING.raised.iter().enumerate() {
            if raised.swap(false, Ordering::SeqCst) {
                let slot = &registry.slots[signum];
                slot.deliveries.fetch_add(1, Ordering::SeqCst);
                slot.waiters.wake_all();
            }
        }
    }
}

/// Installs the handler for `signum`, once.
fn install(registry: &Registry, signum: i32) -> io::Result<()> {
    let slot = &registry.slots[signum as usize];
    if slot.installed.load(Ordering::Acquire) {
        return Ok(());
    }
    let _serial = registry.install.lock();
    if slot.installed.load(Ordering::Acquire) {
        return Ok(());
    }
    // SAFETY: all-zero is a valid sigaction (no flags, empty mask) before the fields are set.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: `action.sa_mask` is a valid sigset_t to empty.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: `action` is initialised; `on_signal` is async-signal-safe; the old action is not
    // wanted.
    cvt(unsafe { libc::sigaction(signum, &action, std::ptr::null_mut()) })?;
    slot.installed.store(true, Ordering::Release);
    Ok(())
}

/// A listener for one kind of signal. Made by [`signal`].
#[derive(Debug)]
pub struct Signal {
    signum: i32,
    seen: u64,
    /// Its place among the signal's waiters, once it waited.
    slot: WaitSlot,
}

/// Listens for `kind`: from now on, the process no longer takes the signal's default action
/// (for `SIGINT` and `SIGTERM`: terminating), and [`Signal::recv`] returns once per delivery.
/// Callable from any thread; signals a process cannot or must not catch are an
/// `InvalidInput` error.
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    let signum = kind.as_raw();
    if signum <= 0 || signum as usize >= SIGNALS || forbidden(signum) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signum} cannot be listened for"),
        ));
    }
    let registry = registry()?;
    install(registry, signum)?;
    let seen = registry.slots[signum as usize]
        .deliveries
        .load(Ordering::SeqCst);
    Ok(Signal {
        signum,
        seen,
        slot: WaitSlot::default(),
    })
}

impl Signal {
    /// Waits for the next delivery after the last one this listener returned (or after its
    /// creation). Always `Some`; the `Option` matches tokio's `Signal::recv`.
    pub async fn recv(&mut self) -> Option<()> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let Ok(registry) = registry() else {
            return Poll::Ready(None);
        };
        let slot = &registry.slots[self.signum as usize];
        let seen = self.seen;
        let delivered = || slot.deliveries.load(Ordering::SeqCst) != seen;
        std::task::ready!(slot.waiters.poll_until(&mut self.slot, cx, delivered));
        self.seen = slot.deliveries.load(Ordering::SeqCst);
        Poll::Ready(Some(()))
    }
}

impl Drop for Signal {
    fn drop(&mut self) {
        if let Ok(registry) = registry() {
            registry.slots[self.signum as usize]
                .waiters
                .leave(&mut self.slot);
        }
    }
}

/// Waits for Ctrl-C (`SIGINT`). The first call installs the handler; from then on `SIGINT` no
/// longer terminates the process.
pub async fn ctrl_c() -> io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    interrupt.recv().await;
    Ok(())
}
