//! How a thread that gives a reactor work makes sure the reactor notices it.
//!
//! See `docs/wake-strategies.md` for what each costs. A strategy is two choices: what the
//! executor does for every cross-thread wake (a task woken, a closure or an operation handed
//! off: [`Notify`]), and, on io_uring, how an operation is handed to the ring (`RingWake`: a
//! queue, a kernel SQ thread, `MSG_RING`, or the syscall tried first).

use std::time::Duration;

use runtime_core::Notify;

/// What a foreign thread does after it queued work for a reactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WakeStrategy {
    /// Always write the reactor's eventfd: one syscall per handoff.
    Eventfd,
    /// Write the eventfd only if the reactor announced it is parking.
    EventfdIfParked,
    /// Never wake: the reactor never waits longer than this, so work waits up to that long.
    Timeout(Duration),
    /// io_uring with `SQPOLL`: foreign threads push SQEs into the ring themselves (under a lock)
    /// and wake the kernel's SQ thread only if it sleeps. Other backends: `EventfdIfParked`.
    SqPoll {
        /// How long the SQ thread polls before it sleeps.
        idle: Duration,
    },
    /// io_uring: a thread that owns a ring wakes another reactor with `IORING_OP_MSG_RING`
    /// instead of its eventfd; other threads write the eventfd if the reactor is parked.
    MsgRing,
    /// io_uring: a foreign thread first tries the operation itself as a nonblocking syscall and
    /// hands it over (as `EventfdIfParked`) only on `EAGAIN`; every other cross-thread wake is
    /// `EventfdIfParked`'s. The default: a handed-off operation costs two thread hops that a
    /// pool thread making the syscall itself does not (see `docs/benchmarks.md`).
    #[default]
    DirectFirst,
}

impl WakeStrategy {
    /// Parses `eventfd`, `eventfd-if-parked`, `timeout:<dur>` (`500us`, `2ms`, `1s`), `sqpoll`,
    /// `sqpoll:<dur>`, `msg-ring`, `direct-first`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let duration = |d: &str| parse_duration(d).ok_or(format!("bad duration {d:?} in {s:?}"));
        Ok(match s.split_once(':') {
            None => match s {
                "eventfd" => WakeStrategy::Eventfd,
                "eventfd-if-parked" => WakeStrategy::EventfdIfParked,
                "sqpoll" => WakeStrategy::SqPoll {
                    idle: Duration::from_millis(10),
                },
                "msg-ring" => WakeStrategy::MsgRing,
                "direct-first" => WakeStrategy::DirectFirst,
                _ => return Err(format!("unknown wake strategy {s:?}")),
            },
            Some(("timeout", d)) => WakeStrategy::Timeout(duration(d)?),
            Some(("sqpoll", d)) => WakeStrategy::SqPoll { idle: duration(d)? },
            Some(_) => return Err(format!("unknown wake strategy {s:?}")),
        })
    }

    /// What the executor does for every cross-thread wake.
    pub(crate) fn notify(&self) -> Notify {
        match *self {
            WakeStrategy::Eventfd => Notify::Always,
            WakeStrategy::Timeout(d) => Notify::Never(d),
            WakeStrategy::EventfdIfParked
            | WakeStrategy::SqPoll { .. }
            | WakeStrategy::MsgRing
            | WakeStrategy::DirectFirst => Notify::IfParked,
        }
    }

    /// How the io_uring driver takes operations from other threads.
    #[cfg(feature = "uring")]
    pub(crate) fn ring_wake(&self) -> backend_uring::RingWake {
        use backend_uring::RingWake;
        match *self {
            WakeStrategy::Eventfd | WakeStrategy::EventfdIfParked | WakeStrategy::Timeout(_) => {
                RingWake::Queue
            }
            WakeStrategy::SqPoll { idle } => RingWake::SqPoll { idle },
            WakeStrategy::MsgRing => RingWake::MsgRing,
            WakeStrategy::DirectFirst => RingWake::DirectFirst,
        }
    }
}

/// A duration written as a whole number and a unit: `ns`, `us`, `ms` or `s` (`"250us"`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "ns" => Duration::from_nanos(n),
        "us" => Duration::from_micros(n),
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_strategy() {
        assert_eq!(WakeStrategy::parse("eventfd"), Ok(WakeStrategy::Eventfd));
        assert_eq!(
            WakeStrategy::parse("timeout:250us"),
            Ok(WakeStrategy::Timeout(Duration::from_micros(250)))
        );
        assert_eq!(
            WakeStrategy::parse("sqpoll:2ms"),
            Ok(WakeStrategy::SqPoll {
                idle: Duration::from_millis(2)
            })
        );
        assert_eq!(WakeStrategy::parse("msg-ring"), Ok(WakeStrategy::MsgRing));
        assert!(WakeStrategy::parse("timeout:soon").is_err());
        assert!(WakeStrategy::parse("carrier-pigeon").is_err());
    }
}
