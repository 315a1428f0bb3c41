//! The ring driver: the [`Driver`] contract over one [`Ring`].

use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use io_uring::opcode;
use runtime_core::{Driver, EnterGuard, ReactorHandle, Unpark};

use crate::direct_descriptors::{FileTable, REGISTER_AFTER};
use crate::enter::EnterFd;
use crate::multishot::Load;
use crate::provided::{BufferRings, StreamBuffers};
use crate::ring::{set_current, with_current, Ring, RingOptions};
use crate::setup::{self, RingConfig, RingWake, ZERO_COPY_FROM};
use crate::shared::RingShared;
use crate::source::RingSource;
use crate::sqe::{ZeroCopy, SEND_ZC_REPORT_USAGE};
use crate::wake::{EventFd, MsgRingUnpark};

/// Whether a ring driver is entered on the calling thread.
pub fn is_current() -> bool {
    with_current(|_| ()).is_some()
}

static NEXT_RING_ID: AtomicUsize = AtomicUsize::new(1);

/// An io_uring driver for one reactor thread.
pub struct RingDriver {
    ring: Rc<Ring>,
    unpark: Arc<dyn Unpark>,
    description: String,
    /// Cancel what is left at drop with `IORING_ASYNC_CANCEL_ANY` (kernels before 6.0 refuse it,
    /// so the driver never relies on it alone).
    cancel_any: bool,
}

impl std::fmt::Debug for RingDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingDriver")
            .field("id", &self.ring.id())
            .field("description", &self.description)
            .finish()
    }
}

impl RingDriver {
    /// Sets up a ring on the calling thread, which must be the thread that runs it
    /// (`SINGLE_ISSUER`). Fails with an error naming the cause where io_uring is refused.
    pub fn new(config: &RingConfig) -> io::Result<Self> {
        let mut built = setup::build(config)?;
        let eventfd = EventFd::new()?;
        let id = NEXT_RING_ID.fetch_add(1, Ordering::Relaxed);
        // Kernels before 5.19 have no buffer rings: reads then use one-shot receives only.
        let wanted = config.stream_buffers;
        let buffers = match config.multishot_receive {
            true => BufferRings::register(&built.ring, wanted)
                .ok()
                .map(Arc::new),
            false => None,
        };
        let mut description = built.description;
        let granted = buffers.as_ref().map(|b| b.mode());
        match (wanted, granted) {
            (_, Some(StreamBuffers::Bundles)) => description += "; receive bundles",
            (_, Some(StreamBuffers::Incremental)) => description += "; incremental buffers",
            (StreamBuffers::Bundles, Some(_)) => {
                description += match built.ring.params().is_feature_recvsend_bundle() {
                    false => {
                        "; no receive bundles (the kernel lacks IORING_FEAT_RECVSEND_BUNDLE, 6.10+)"
                    }
                    true => {
                        "; no receive bundles (6.13.11-6.14.8 hand bundled buffers out of order)"
                    }
                }
            }
            (StreamBuffers::Incremental, Some(_)) => {
                description +=
                    "; no incremental buffers (the kernel refused IOU_PBUF_RING_INC, 6.12+)"
            }
            _ => {}
        }
        // Multishot receives came with 6.0: a 5.19 kernel has buffer rings but refuses them,
        // and then reads never arm, so they are never late either.
        if config.late_receive && granted.is_some() && setup::kernel_version() >= (6, 0, 0) {
            description += "; late receives under load";
        }
        let shared = Arc::new(RingShared::new(
            id,
            built.ring.as_raw_fd(),
            buffers,
            Load::new(config.late_receive),
            config.wake,
        ));
        let zero_copy = match config.zero_copy_send {
            true if built.opcodes.is_supported(opcode::SendZc::CODE) => {
                description += &format!("; zero-copy sends from {ZERO_COPY_FROM} bytes");
                let flags = match setup::send_zc_reports_usage(&mut built.ring) {
                    true => SEND_ZC_REPORT_USAGE,
                    false => 0,
                };
                Some(ZeroCopy {
                    from: ZERO_COPY_FROM,
                    flags,
                })
            }
            true => {
                description += "; no zero-copy sends (the kernel lacks SEND_ZC, 6.0+)";
                None
            }
            false => None,
        };
        let budget = config.latency_budget.filter(|b| !b.is_zero());
        let min_wait = match budget {
            Some(b) if config.kernel_min_wait && built.ring.params().is_feature_min_timeout() => {
                description += &format!("; latency budget {b:?} as the kernel's min_wait");
                true
            }
            Some(b) if config.kernel_min_wait => {
                description += &format!(
                    "; latency budget {b:?} by the driver's nap (the kernel lacks \
                     IORING_FEAT_MIN_TIMEOUT, 6.12+)"
                );
                false
            }
            Some(b) => {
                description += &format!("; latency budget {b:?} by the driver's nap");
                false
            }
            None => false,
        };
        let (enter_fd, registration) =
            EnterFd::new(built.ring.as_raw_fd(), config.registered_ring_fd);
        if let Some(registration) = registration {
            description += &format!("; {registration}");
        }
        let files = match config.direct_descriptors {
            true => match FileTable::for_ring(&built.ring, &built.opcodes) {
                Ok(files) => {
                    description += &format!(
                        "; direct descriptors (up to {} slots, from a socket's \
                         {REGISTER_AFTER}th operation)",
                        files.size()
                    );
                    Some(files)
                }
                Err(why) => {
                    description += &format!("; no direct descriptors ({why})");
                    None
                }
            },
            false => None,
        };
        let options = RingOptions {
            taskrun_flag: built.taskrun_flag,
            budget,
            min_wait,
            zero_copy,
            files,
        };
        let ring = Ring::new(
            built.ring,
            options,
            enter_fd,
            eventfd.as_raw_fd(),
            shared.clone(),
        );
        let unpark: Arc<dyn Unpark> = match config.wake {
            RingWake::MsgRing => Arc::new(MsgRingUnpark::new(shared, eventfd)),
            _ => eventfd,
        };
        Ok(RingDriver {
            ring,
            unpark,
            description,
            cancel_any: true,
        })
    }

    #[cfg(test)]
    pub(crate) fn ring(&self) -> &Ring {
        &self.ring
    }

    /// How the ring was set up, and what was given up (flags the kernel refused), if anything.
    pub fn description(&self) -> &str {
        &self.description
    }
}

impl Driver for RingDriver {
    type Source = RingSource;

    fn name(&self) -> &'static str {
        "uring"
    }

    fn park(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.ring.turn(timeout)
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.unpark.clone()
    }

    fn enter(&self, reactor: &ReactorHandle) -> EnterGuard {
        let _ = self.ring.shared.reactor.set(reactor.clone());
        let prev = set_current(Some(self.ring.clone()));
        EnterGuard::new(move || drop(set_current(prev)))
    }
}

impl Drop for RingDriver {
    /// Cancels what is in flight and waits (boundedly) for the kernel to let go of it; memory the
    /// kernel still holds after that is leaked rather than freed.
    fn drop(&mut self) {
        self.ring.shut_down(self.cancel_any);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::RingDriver;
    use crate::ring::DRAIN_TIMEOUTS;
    use crate::setup::RingConfig;

    /// Where the kernel has them (6.1 and later), the ring really is set up with
    /// `SINGLE_ISSUER | DEFER_TASKRUN`: the description is not a claim the setup did not check.
    #[test]
    fn the_best_setup_flags_are_granted_where_the_kernel_has_them() {
        let driver = match RingDriver::new(&RingConfig::default()) {
            Ok(d) => d,
            Err(e) => return eprintln!("skipped: this kernel refuses io_uring: {e}"),
        };
        let granted = driver.ring.params().is_setup_single_issuer();
        if crate::setup::kernel_version() >= (6, 1, 0) {
            assert!(granted, "SINGLE_ISSUER was not granted on a 6.1+ kernel");
            assert!(
                driver.description.contains("SINGLE_ISSUER|DEFER_TASKRUN"),
                "{}",
                driver.description
            );
        } else {
            assert_eq!(
                granted,
                driver.description.contains("SINGLE_ISSUER"),
                "{}",
                driver.description
            );
        }
    }

    /// Kernels 5.11 to 5.18 refuse `IORING_ASYNC_CANCEL_ANY`: without it the eventfd read must
    /// still be cancelled (by its user data), or every drop stalls for the drain timeout and
    /// leaks the wake buffer.
    #[test]
    fn drop_without_cancel_any_drains() {
        let mut driver = match RingDriver::new(&RingConfig::default()) {
            Ok(d) => d,
            Err(e) => return eprintln!("skipped: this kernel refuses io_uring: {e}"),
        };
        driver.cancel_any = false;
        let before = DRAIN_TIMEOUTS.load(Ordering::Relaxed);
        drop(driver);
        assert_eq!(
            DRAIN_TIMEOUTS.load(Ordering::Relaxed),
            before,
            "the drop waited out the drain timeout: the wake read was never cancelled"
        );
    }

    /// A receive still waiting when the driver is dropped (without `CANCEL_ANY`, as on kernels
    /// before 6.0) is cancelled by its key: its waker runs before the drop returns, and the drop
    /// does not wait out the drain timeout.
    #[test]
    fn drop_cancels_and_waits_for_an_operation_in_flight() {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        use std::task::{Wake, Waker};

        struct Flag(AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }

        let mut driver = match RingDriver::new(&RingConfig::default()) {
            Ok(d) => d,
            Err(e) => return eprintln!("skipped: this kernel refuses io_uring: {e}"),
        };
        driver.cancel_any = false;
        let (quiet, _peer) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        // Leaked: the kernel may write into it until the receive's CQE, and the test does not
        // rely on the driver for that.
        let buf: &'static mut [u8; 16] = Box::leak(Box::new([0u8; 16]));
        let entry = io_uring::opcode::Recv::new(
            io_uring::types::Fd(quiet.as_raw_fd()),
            buf.as_mut_ptr(),
            16,
        )
        .build();
        let woken = Arc::new(Flag(AtomicBool::new(false)));
        driver.ring.start(entry, &Waker::from(woken.clone()));
        driver
            .ring
            .turn(Some(std::time::Duration::ZERO))
            .expect("submit");
        assert!(
            !woken.0.load(Ordering::SeqCst),
            "nothing was sent to the socket"
        );
        let before = DRAIN_TIMEOUTS.load(Ordering::Relaxed);
        drop(driver);
        assert!(
            woken.0.load(Ordering::SeqCst),
            "the drop returned before the receive's completion"
        );
        assert_eq!(DRAIN_TIMEOUTS.load(Ordering::Relaxed), before);
    }
}
