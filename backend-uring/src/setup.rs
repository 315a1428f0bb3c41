//! Creating a ring: the setup flags we want, the fallbacks, and why io_uring was refused.

use std::io;

use io_uring::{cqueue, opcode, types, IoUring, Probe};

use crate::provided::StreamBuffers;
use crate::sqe::{REQUIRED_OPCODES, SEND_ZC_REPORT_USAGE};
use crate::user_data::UserData;

/// How to set up a reactor's ring.
#[derive(Debug, Clone)]
pub struct RingConfig {
    /// Submission queue entries (the completion queue gets twice as many).
    pub entries: u32,
    /// How operations from other threads reach the ring; `SqPoll` sets the ring up with a
    /// kernel SQ thread.
    pub wake: RingWake,
    /// Receive through one armed multishot receive per socket into provided buffers (where the
    /// kernel has them, 5.19 and later); off, every read is a one-shot receive into the
    /// caller's buffer.
    pub multishot_receive: bool,
    /// With multishot receive: while the reactor is busy (a reap of 32 completions or more),
    /// reads receive late, with one-shot receives submitted at the end of the turn, and an
    /// armed multishot receive that delivers is cancelled (see `multishot.rs`).
    pub late_receive: bool,
    /// How stream receives use the buffer ring, where the kernel has it (else plainly): as
    /// bundles (`IORING_RECVSEND_BUNDLE`, 6.10+), or into large buffers the kernel consumes a
    /// receive at a time (`IOU_PBUF_RING_INC`, 6.12+).
    pub stream_buffers: StreamBuffers,
    /// The runtime's latency budget, applied as the kernel's `min_wait` where the kernel has
    /// it (`IORING_FEAT_MIN_TIMEOUT`, 6.12+); elsewhere the reactor naps instead.
    pub latency_budget: Option<std::time::Duration>,
    /// Use the kernel's `min_wait` for the budget where it has it; off, the driver's nap is
    /// used everywhere (to test the older kernels' path).
    pub kernel_min_wait: bool,
    /// Make sends of at least [`ZERO_COPY_FROM`] bytes zero-copy (`SEND_ZC`, 6.0+) where the
    /// kernel has it: the buffer is held until the kernel's notification that it let go.
    pub zero_copy_send: bool,
    /// Enter the ring by its registered index (5.18+) rather than its fd.
    pub registered_ring_fd: bool,
    /// Set the ring up without the SQ index array (`NO_SQARRAY`, 6.6+) where the kernel takes it.
    pub no_sqarray: bool,
    /// Give each socket that has done a few operations on its reactor a slot in the ring's
    /// registered file table (6.13+), which that reactor's SQEs then name instead of its fd,
    /// sparing the kernel an fd lookup per request (not with `SqPoll`).
    pub direct_descriptors: bool,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            entries: 256,
            wake: RingWake::default(),
            multishot_receive: true,
            late_receive: true,
            stream_buffers: StreamBuffers::Plain,
            zero_copy_send: false,
            latency_budget: None,
            kernel_min_wait: true,
            registered_ring_fd: true,
            no_sqarray: true,
            direct_descriptors: true,
        }
    }
}

/// The smallest send made zero-copy when [`RingConfig::zero_copy_send`] is on: below it the
/// notification's cost outweighs the copy saved, by published measurements on real NICs (on
/// loopback the kernel copies anyway; `docs/benchmarks.md` measures both).
pub const ZERO_COPY_FROM: u32 = 16 * 1024;

/// How an operation polled off its reactor reaches the ring (the io_uring half of a wake
/// strategy; the executor's half, whether to write the eventfd, is `runtime_core::Notify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RingWake {
    /// Handed off through the reactor's queue, pushed on its next turn.
    Queue,
    /// A ring with `SQPOLL`: other threads push SQEs into it themselves (under a lock) and wake
    /// the kernel's SQ thread only if it sleeps.
    SqPoll {
        /// How long the SQ thread polls before it sleeps.
        idle: std::time::Duration,
    },
    /// Through the queue; a thread that owns a ring of its own wakes this one with
    /// `IORING_OP_MSG_RING` instead of its eventfd.
    MsgRing,
    /// The calling thread first tries the operation as a nonblocking syscall, and hands it off
    /// through the queue only on `EAGAIN`.
    #[default]
    DirectFirst,
}

/// A ring and what was given up to get it.
pub(crate) struct BuiltRing {
    pub(crate) ring: IoUring,
    /// How it was set up, and why the preferred flags were not used if they were not.
    pub(crate) description: String,
    /// Whether the kernel flags pending deferred work in the SQ ring (`TASKRUN_FLAG`).
    pub(crate) taskrun_flag: bool,
    /// The opcodes the kernel has (probed once, at setup).
    pub(crate) opcodes: Probe,
}

/// Sets up a ring with `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG`, or, on kernels that refuse
/// those flags (before 6.1), `COOP_TASKRUN | TASKRUN_FLAG`, or a plain ring, recording why.
pub(crate) fn build(config: &RingConfig) -> io::Result<BuiltRing> {
    let entries = config.entries.max(2);
    if let RingWake::SqPoll { idle } = config.wake {
        // SQPOLL excludes DEFER_TASKRUN, and foreign threads push into its SQ: no SINGLE_ISSUER.
        let idle_ms = idle.as_millis().clamp(1, u32::MAX as u128) as u32;
        let ring = IoUring::builder()
            .setup_sqpoll(idle_ms)
            .build(entries)
            .map_err(refused)?;
        let opcodes = check_features(&ring)?;
        return Ok(BuiltRing {
            ring,
            description: format!("ring with SQPOLL (idle {idle_ms} ms)"),
            taskrun_flag: false,
            opcodes,
        });
    }
    let built = build_with(entries, &ATTEMPTS, config.no_sqarray)?;
    if config.wake == RingWake::MsgRing {
        require(
            &built.opcodes,
            &[(io_uring::opcode::MsgRingData::CODE, "MSG_RING")],
        )?;
    }
    Ok(built)
}

/// One way to set up a ring.
struct Attempt {
    flags: &'static str,
    apply: fn(&mut io_uring::Builder),
    taskrun_flag: bool,
}

/// Best first: each later one is for kernels that refuse (`EINVAL`) the one before.
const ATTEMPTS: [Attempt; 3] = [
    Attempt {
        flags: "SINGLE_ISSUER|DEFER_TASKRUN",
        apply: |b| {
            b.setup_single_issuer()
                .setup_defer_taskrun()
                .setup_taskrun_flag();
        },
        taskrun_flag: true,
    },
    Attempt {
        flags: "COOP_TASKRUN",
        apply: |b| {
            b.setup_coop_taskrun().setup_taskrun_flag();
        },
        taskrun_flag: true,
    },
    Attempt {
        flags: "no setup flags",
        apply: |_| {},
        taskrun_flag: false,
    },
];

/// Tries `attempts` in order, each first with `NO_SQARRAY` if `no_sqarray`; the description
/// names the flags used and those refused.
fn build_with(entries: u32, attempts: &[Attempt], no_sqarray: bool) -> io::Result<BuiltRing> {
    let mut refusals = Vec::new();
    let tries = attempts.iter().flat_map(|attempt| {
        let with = no_sqarray.then_some((attempt, true));
        with.into_iter().chain([(attempt, false)])
    });
    for (attempt, no_sqarray) in tries {
        let mut builder = IoUring::builder();
        (attempt.apply)(&mut builder);
        if no_sqarray {
            builder.setup_no_sqarray();
        }
        let flags = match no_sqarray {
            true => format!("{}|NO_SQARRAY", attempt.flags),
            false => attempt.flags.to_string(),
        };
        match builder.build(entries) {
            Ok(ring) => {
                let mut description = format!("ring with {flags}");
                if !refusals.is_empty() {
                    description += &format!(" (kernel refused {})", refusals.join(", "));
                }
                let opcodes = check_features(&ring)?;
                return Ok(BuiltRing {
                    ring,
                    description,
                    taskrun_flag: attempt.taskrun_flag,
                    opcodes,
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                refusals.push(format!("{flags}: {e}"));
            }
            Err(e) => return Err(refused(e)),
        }
    }
    Err(unsupported(&format!(
        "kernel refused every io_uring setup: {}",
        refusals.join("; ")
    )))
}

/// Fails unless the kernel has what every ring needs; returns the opcodes it has.
fn check_features(ring: &IoUring) -> io::Result<Probe> {
    if !ring.params().is_feature_ext_arg() {
        return Err(unsupported(
            "kernel lacks IORING_FEAT_EXT_ARG (timed waits need Linux 5.11 or later)",
        ));
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| unsupported(&format!("cannot probe io_uring opcodes: {e}")))?;
    require(&probe, REQUIRED_OPCODES)?;
    Ok(probe)
}

/// The running kernel's release as (major, minor, patch); zeros where it cannot be read. Read
/// once per process.
pub(crate) fn kernel_version() -> (u32, u32, u32) {
    static VERSION: std::sync::OnceLock<(u32, u32, u32)> = std::sync::OnceLock::new();
    *VERSION.get_or_init(|| {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse().unwrap_or(0));
        let mut next = || parts.next().unwrap_or(0);
        (next(), next(), next())
    })
}

/// Whether `ring`'s kernel takes `IORING_SEND_ZC_REPORT_USAGE` (6.2+, and some 6.1 stable
/// releases): a `SEND_ZC` with it on no socket fails with `EBADF` where the flag is known, and
/// with `EINVAL` where it is not. Run on a ring just set up, before anything else is queued.
pub(crate) fn send_zc_reports_usage(ring: &mut IoUring) -> bool {
    let entry = opcode::SendZc::new(types::Fd(-1), std::ptr::null(), 0)
        .zc_flags(SEND_ZC_REPORT_USAGE)
        .build()
        .user_data(UserData::Ignored.encode());
    // SAFETY: the entry names no memory: a null buffer of no bytes, and no socket.
    if unsafe { ring.submission().push(&entry) }.is_err() {
        return false;
    }
    // The send's result, and its notification if it is flagged `F_MORE`.
    let mut result = None;
    let mut more = true;
    let limit = types::Timespec::from(std::time::Duration::from_secs(1));
    while more {
        // Bounded, so that a notification that never comes cannot hold up the setup.
        let args = types::SubmitArgs::new().timespec(&limit);
        if ring.submitter().submit_with_args(1, &args).is_err() {
            return false;
        }
        for cqe in ring.completion() {
            more = cqueue::more(cqe.flags());
            if !cqueue::notif(cqe.flags()) {
                result = Some(cqe.result());
            }
        }
    }
    matches!(result, Some(r) if r != -libc::EINVAL)
}

/// Fails, naming them, if `probe` lacks any of `opcodes`.
fn require(probe: &Probe, opcodes: &[(u8, &str)]) -> io::Result<()> {
    let missing: Vec<&str> = opcodes
        .iter()
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(unsupported(&format!(
            "kernel lacks io_uring opcodes: {}",
            missing.join(", ")
        )))
    }
}

fn unsupported(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, why.to_string())
}

/// Turns an `io_uring_setup` failure into an error that names the cause.
fn refused(e: io::Error) -> io::Error {
    let why = match e.raw_os_error() {
        Some(libc::ENOSYS) => {
            "io_uring_setup failed with ENOSYS: the kernel has no io_uring, or a seccomp filter hides it".to_string()
        }
        Some(libc::EPERM) => match sysctl_io_uring_disabled() {
            Some(2) => "io_uring_setup failed with EPERM: io_uring is disabled by sysctl kernel.io_uring_disabled=2".to_string(),
            Some(1) => "io_uring_setup failed with EPERM: kernel.io_uring_disabled=1 limits io_uring to the io_uring_group".to_string(),
            _ => "io_uring_setup failed with EPERM: forbidden by a seccomp filter or container policy".to_string(),
        },
        Some(libc::ENOMEM) => {
            "io_uring_setup failed with ENOMEM: cannot lock ring memory (raise RLIMIT_MEMLOCK)".to_string()
        }
        _ => format!("io_uring_setup failed: {e}"),
    };
    io::Error::new(e.kind(), why)
}

pub(crate) fn sysctl_io_uring_disabled() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_flags_fall_back_with_the_reason_recorded() {
        // DEFER_TASKRUN without SINGLE_ISSUER is refused by every kernel that knows it.
        let attempts = [
            Attempt {
                flags: "DEFER_TASKRUN alone",
                apply: |b| {
                    b.setup_defer_taskrun();
                },
                taskrun_flag: true,
            },
            Attempt {
                flags: "no setup flags",
                apply: |_| {},
                taskrun_flag: false,
            },
        ];
        let built = match build_with(8, &attempts, false) {
            Ok(b) => b,
            Err(e) => return eprintln!("skipped: io_uring unavailable: {e}"),
        };
        assert!(
            built.description.starts_with("ring with no setup flags"),
            "{}",
            built.description
        );
        assert!(
            built
                .description
                .contains("kernel refused DEFER_TASKRUN alone"),
            "{}",
            built.description
        );
        assert!(!built.taskrun_flag);
    }

    #[test]
    fn zero_copy_usage_reports_are_found_where_the_kernel_has_them() {
        let Ok(mut ring) = IoUring::new(8) else {
            return eprintln!("skipped: io_uring unavailable");
        };
        let mut probe = Probe::new();
        let probed = ring.submitter().register_probe(&mut probe).is_ok();
        if !probed || !probe.is_supported(opcode::SendZc::CODE) {
            return eprintln!("skipped: no SEND_ZC");
        }
        let reports = send_zc_reports_usage(&mut ring);
        assert_eq!(
            reports,
            kernel_version() >= (6, 2, 0),
            "{:?}",
            kernel_version()
        );
        let left: Vec<_> = ring.completion().map(|c| (c.result(), c.flags())).collect();
        assert!(
            left.is_empty(),
            "the probe left completions behind: {left:?}"
        );
    }

    #[test]
    fn bundles_are_refused_where_stable_kernels_reordered_them() {
        use crate::provided::reorders_bundles;
        assert!(!reorders_bundles((6, 13, 10)));
        assert!(reorders_bundles((6, 13, 11)));
        assert!(reorders_bundles((6, 14, 8)));
        assert!(!reorders_bundles((6, 14, 9)));
        assert!(!reorders_bundles((6, 18, 0)));
    }
}
