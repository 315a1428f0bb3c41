//! The readiness driver: the [`Driver`](runtime_core::Driver) contract over epoll, through mio.
//!
//! Every operation is a plain nonblocking syscall made by the thread that polls it
//! (`attempt.rs`); only when the kernel answers `EAGAIN` does the operation wait, by leaving its
//! waker with the fd's readiness record (`readiness.rs`), which the driver's `epoll_wait` wakes (edge-triggered).

mod attempt;
mod driver;
mod readiness;
mod source;

pub use attempt::EpollOpState;
pub use driver::{is_current, EpollDriver};
pub use source::EpollSource;
