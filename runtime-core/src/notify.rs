//! How the executor makes a reactor notice work another thread gave it.
//!
//! This is what the executor itself runs of a wake strategy (`docs/wake-strategies.md`); the
//! choices that only an io_uring ring can make (a kernel SQ thread, `MSG_RING`, trying the
//! syscall first) belong to that driver's configuration.

use std::time::Duration;

/// What a thread that queued work for a reactor does to wake it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Notify {
    /// Always use the driver's unpark (an eventfd write): one syscall per wake.
    Always,
    /// Unpark only if the reactor announced it is parking (the parking protocol).
    #[default]
    IfParked,
    /// Never unpark: the reactor never waits longer than this, so work waits up to that long.
    Never(Duration),
}

impl Notify {
    /// The longest a reactor may block, if this bounds it.
    pub fn max_park(&self) -> Option<Duration> {
        match self {
            Notify::Never(d) => Some(*d),
            Notify::Always | Notify::IfParked => None,
        }
    }
}
