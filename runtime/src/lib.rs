//! An async runtime with two interchangeable I/O backends: **io_uring** (a ring driver with
//! `SINGLE_ISSUER | DEFER_TASKRUN`) and **epoll** (a readiness driver making direct syscalls).
//!
//! One executor sits over both, and the sockets are written once, so the same program runs on
//! either. The cargo features `uring` and `epoll` choose what is compiled in; with both (the
//! default), the backend is chosen at startup: io_uring if the kernel allows it, epoll
//! otherwise, and `RUNTIME_BACKEND=uring|epoll` overrides. [`running_backend()`] says which one runs
//! and why.
//!
//! ```no_run
//! use runtime::net::TcpListener;
//! use runtime::IoBuf;
//!
//! #[runtime::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     println!("listening on {}", listener.local_addr()?);
//!     loop {
//!         let (stream, peer) = listener.accept().await?;
//!         runtime::spawn(async move {
//!             let mut buf = vec![0u8; 4096];
//!             loop {
//!                 let (n, b) = match stream.read(buf).await.into_result() {
//!                     Ok((0, _)) => return, // the peer closed
//!                     Ok(read) => read,
//!                     Err(e) => return eprintln!("{peer}: read: {e}"),
//!                 };
//!                 match stream.write_all(b.slice(..n)).await.into_result() {
//!                     Ok(((), b)) => buf = b.into_inner(),
//!                     Err(e) => return eprintln!("{peer}: write: {e}"),
//!                 }
//!             }
//!         });
//!     }
//! }
//! ```
#![deny(unsafe_code)]

#[cfg(not(any(feature = "uring", feature = "epoll")))]
compile_error!("enable at least one backend feature of `runtime`: `uring` or `epoll`");

#[cfg(all(feature = "uring", feature = "epoll"))]
mod auto;
mod builder;
pub mod compat;
mod doctor;
mod fast_paths;
#[doc(hidden)]
pub mod private;
mod select;
mod wake;

pub use builder::{running_backend, Backend, BackendInfo, BackendKind, Builder, Runtime};
pub use doctor::{doctor, Doctor};
pub use fast_paths::{FastPath, FAST_PATHS, URING_OFF_ENV};
pub use macros::{main, test};
pub use runtime_core::{
    current_reactor, in_runtime, metrics, reactors, spawn, spawn_on, yield_now, BufResult, IoBuf,
    IoBufMut, JoinError, JoinHandle, MetricsSnapshot, ReactorHandle, Slice,
};

/// The worker pool: `Send` futures and blocking closures off the reactors.
pub mod pool {
    pub use runtime_core::spawn_blocking;
    pub use runtime_core::spawn_pool as spawn;
}

/// Accepts on `addr` on every reactor (one `SO_REUSEPORT` listener each), calling `handler` on
/// the reactor that accepted; returns the running [`Server`] once all listen. See
/// [`Server::shutdown`] for a graceful stop.
pub async fn serve<H, Fut>(addr: std::net::SocketAddr, handler: H) -> std::io::Result<Server>
where
    H: Fn(net::TcpStream) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    ::net::serve::<DefaultSource, H, Fut>(addr, handler).await
}

/// A server bound on every reactor. See [`::net::Server`].
pub type Server = ::net::Server<DefaultSource>;
pub use ::net::{Draining, ShutdownReport};
pub use select::{DefaultDriver, DefaultSource};
pub use wake::{parse_duration, WakeStrategy};

/// Unix signals as futures, on every backend, from any reactor or pool thread.
pub mod signal {
    pub use runtime_core::signal::{ctrl_c, signal, Signal, SignalKind};
}

/// Timers of the current reactor.
pub mod time {
    pub use runtime_core::{
        interval, sleep, sleep_until, timeout, Elapsed, Interval, Sleep, Timeout,
    };
}

/// Sockets on the selected backend: TCP, UDP and Unix, and name resolution off the reactor.
///
/// Every socket gives its fd out through `AsFd`, so `socket2::SockRef::from(&socket)` (the
/// [`socket2`] re-exported here) reaches any option not wrapped.
pub mod net {
    use crate::DefaultSource;

    pub use ::net::{
        lookup_host, Family, Inet, IntoStdError, ReceivedFds, ToSocketAddrs, UCred, Unix, UnixAddr,
    };

    /// A connected stream of either family: [`TcpStream`] is `Stream<Inet>`, [`UnixStream`]
    /// is `Stream<Unix>`. See [`::net::Stream`].
    pub type Stream<F> = ::net::Stream<DefaultSource, F>;
    pub use socket2;

    #[doc(hidden)]
    pub use ::net::set_lookup_delay as set_lookup_delay_for_tests;

    /// A listening TCP socket. See [`::net::Listener`].
    pub type TcpListener = ::net::TcpListener<DefaultSource>;
    /// A TCP connection. See [`::net::Stream`].
    pub type TcpStream = ::net::TcpStream<DefaultSource>;
    /// A TCP socket to configure before it listens or connects. See [`::net::TcpSocket`].
    pub type TcpSocket = ::net::TcpSocket<DefaultSource>;
    /// The read half of a split [`TcpStream`].
    pub type OwnedReadHalf = ::net::OwnedReadHalf<DefaultSource, ::net::Inet>;
    /// The write half of a split [`TcpStream`].
    pub type OwnedWriteHalf = ::net::OwnedWriteHalf<DefaultSource, ::net::Inet>;
    /// The stream of a listener's connections.
    pub type Incoming<'a> = ::net::Incoming<'a, DefaultSource, ::net::Inet>;
    /// A UDP socket. See [`::net::Datagram`].
    pub type UdpSocket = ::net::UdpSocket<DefaultSource>;
    /// A listening Unix stream socket. See [`::net::Listener`].
    pub type UnixListener = ::net::UnixListener<DefaultSource>;
    /// A connected Unix stream socket. See [`::net::Stream`].
    pub type UnixStream = ::net::UnixStream<DefaultSource>;
    /// A Unix datagram socket. See [`::net::Datagram`].
    pub type UnixDatagram = ::net::UnixDatagram<DefaultSource>;
    /// Poll-based receives and sends on a [`UdpSocket`] (`PollDatagram<Inet>`) or a
    /// [`UnixDatagram`] (`PollDatagram<Unix>`), for code that drives a socket from its own
    /// state machine. See [`::net::PollDatagram`].
    pub type PollDatagram<F> = ::net::PollDatagram<DefaultSource, F>;

    /// The halves of a split [`UnixStream`].
    pub mod unix {
        use crate::DefaultSource;

        /// The read half of a split [`UnixStream`](super::UnixStream).
        pub type OwnedReadHalf = ::net::OwnedReadHalf<DefaultSource, ::net::Unix>;
        /// The write half of a split [`UnixStream`](super::UnixStream).
        pub type OwnedWriteHalf = ::net::OwnedWriteHalf<DefaultSource, ::net::Unix>;
    }
}

/// The README's example compiles (checked as a doctest).
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
