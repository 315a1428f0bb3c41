//! The parts of the runtime that do not depend on a backend: the single-reactor executor,
//! tasks and their handles, timers, owned-buffer traits, and the [`Driver`] contract that each
//! backend implements.
//!
//! Nothing here knows about io_uring or epoll; the backends depend on this crate, never the
//! other way round.

mod buf;
mod driver;
mod join;
mod op;
pub mod ops;
pub mod park;
mod scheduler;
pub mod sys;
mod task;
mod timer;

pub use buf::{BufResult, IoBuf, IoBufMut, Slice};
pub use driver::{Driver, EnterGuard, Source, Unpark};
pub use join::{JoinError, JoinHandle};
pub use op::{Direction, Op, OpCode, OpKind};
pub use scheduler::{block_on, in_runtime, spawn, yield_now};
pub use timer::{interval, sleep, sleep_until, timeout, Elapsed, Interval, Sleep, Timeout};
