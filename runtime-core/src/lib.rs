//! The parts of the runtime that do not depend on a backend: the single-reactor executor,
//! tasks and their handles, timers, owned-buffer traits, and the [`Driver`] contract that each
//! backend implements.
//!
//! Nothing here knows about io_uring or epoll; the backends depend on this crate, never the
//! other way round.

mod budget;
mod buf;
pub mod coop;
mod driver;
mod join;
mod lent;
mod message;
pub mod metrics;
mod notify;
mod op;
pub mod ops;
pub mod park;
mod pool;
mod runtime;
mod scheduler;
pub mod signal;
pub mod sys;
mod task;
pub mod task_state;
mod timer;
pub mod waiters;

pub use budget::{LatencyBudget, BATCH};
pub use buf::{BufResult, IoBuf, IoBufMut, Slice};
pub use driver::{not_on_a_reactor, Driver, EnterGuard, Source, Unpark};
pub use join::{JoinError, JoinHandle};
pub use lent::Lent;
pub use metrics::{Metrics, MetricsSnapshot};
pub use notify::Notify;
pub use op::{Direction, Op, OpCode, OpKind};
pub use runtime::{
    detach, metrics, reactors, run_runtime, spawn_blocking, spawn_on, spawn_pool, RuntimeConfig,
};
pub use scheduler::{
    block_on, current_reactor, in_runtime, run_reactor, set_timer_home, spawn, yield_now,
    ReactorConfig, ReactorHandle,
};
pub use timer::{interval, sleep, sleep_until, timeout, Elapsed, Interval, Sleep, Timeout};
