//! Per-reactor counters, cheap enough to leave on.
//!
//! Counters that only the reactor thread writes are bumped with a plain load and store (no
//! locked instruction); counters that other threads write use `fetch_add`. Both are read from
//! any thread with relaxed loads: a snapshot is a consistent-enough view for rates, not a
//! transaction.

use std::sync::atomic::{AtomicU64, Ordering};

/// One counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`; only from the reactor thread that owns the counter.
    #[inline]
    pub fn add_local(&self, n: u64) {
        self.0
            .store(self.0.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// Adds `n` from any thread.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

macro_rules! metrics {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// The live counters of one reactor.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[$doc])* pub $name: Counter,)*
        }

        /// A copy of one reactor's counters at one moment.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct MetricsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Metrics {
            /// Reads every counter.
            pub fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $($name: self.$name.get(),)* }
            }
        }

        impl MetricsSnapshot {
            /// Counter-wise `self - earlier`.
            pub fn since(&self, earlier: &MetricsSnapshot) -> MetricsSnapshot {
                MetricsSnapshot { $($name: self.$name.saturating_sub(earlier.$name),)* }
            }

            /// Counter-wise sum.
            pub fn sum(snapshots: &[MetricsSnapshot]) -> MetricsSnapshot {
                let mut total = MetricsSnapshot::default();
                for s in snapshots {
                    $(total.$name += s.$name;)*
                }
                total
            }

            /// `(name, value)` pairs, in declaration order.
            pub fn fields(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }
        }
    };
}

metrics! {
    /// Turns of the reactor loop.
    loop_turns,
    /// Turns that blocked in the driver.
    parks,
    /// `io_uring_enter` or `epoll_wait` calls.
    driver_waits,
    /// Operations made as direct syscalls (epoll attempts, direct-first tries).
    direct_syscalls,
    /// SQEs pushed to the ring.
    sqes_submitted,
    /// CQEs taken off the ring.
    cqes_reaped,
    /// Operations and tasks handed to this reactor from other threads.
    handoffs,
    /// Wakes that made a syscall (eventfd write, `MSG_RING`, SQ thread wakeup).
    wakes_written,
    /// Cross-thread wakes that needed no syscall (the reactor was awake).
    wakes_suppressed,
    /// Operations cancelled because their future was dropped.
    cancels,
    /// Reads that went to the kernel as a one-shot receive into the caller's buffer (io_uring:
    /// multishot receive off, refused, or out of provided buffers).
    one_shot_receives,
    /// Reads that went to the kernel as a one-shot receive at the end of a busy turn, where a
    /// multishot receive was possible (io_uring's late receives).
    late_receives,
    /// Receive completions that carried more than one provided buffer (io_uring's receive
    /// bundles, 6.10+).
    receive_bundles,
    /// Receive completions into the rest of a buffer an earlier receive had started (io_uring's
    /// incrementally consumed buffers, 6.12+).
    shared_buffer_receives,
    /// Sends made zero-copy (io_uring `SEND_ZC`, 6.0+).
    zero_copy_sends,
    /// Zero-copy sends the kernel copied after all (it does so for loopback).
    zero_copy_copied,
    /// Sockets given a slot in the ring's registered file table (io_uring's direct descriptors).
    direct_descriptors,
    /// Reads and accepts answered from what a dropped operation produced (io_uring's salvage).
    salvaged,
    /// Pushes that found the submission queue full (the ring then submits early, or the SQE
    /// waits in the backlog for the next turn).
    sq_full,
    /// Ring entries that found the completion queue overflowed (the kernel held completions
    /// until the driver flushed them).
    cq_overflows,
}

impl std::fmt::Display for MetricsSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fields = self.fields();
        for (i, (name, value)) in fields.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}={value}")?;
        }
        Ok(())
    }
}
