//! The io_uring preflight: what this kernel and process allow, which fast paths the driver will
//! use, and one line on each piece that is missing.

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;

use io_uring::{opcode, IoUring, Probe};

use crate::direct_descriptors::{FileTable, REGISTER_AFTER};
use crate::enter::EnterFd;
use crate::provided::{BufferRings, StreamBuffers};
use crate::setup::{self, RingConfig};
use crate::sqe::REQUIRED_OPCODES;

/// One thing the preflight looked at.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What was looked at.
    pub topic: &'static str,
    /// Whether it is there (or harmless).
    pub ok: bool,
    /// What was found, and for a missing piece what that costs.
    pub detail: String,
}

/// What the preflight found, in order.
#[derive(Debug, Clone)]
pub struct UringReport {
    /// Each finding.
    pub findings: Vec<Finding>,
    /// Whether the driver can run here.
    pub usable: bool,
}

impl fmt::Display for UringReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in &self.findings {
            let mark = if finding.ok { "ok  " } else { "MISS" };
            writeln!(f, "{mark} {:<22} {}", finding.topic, finding.detail)?;
        }
        Ok(())
    }
}

impl UringReport {
    fn add(&mut self, topic: &'static str, ok: bool, detail: impl Into<String>) {
        self.findings.push(Finding {
            topic,
            ok,
            detail: detail.into(),
        });
    }
}

/// Looks at the kernel, the process's limits and the io_uring features the driver uses.
pub fn doctor() -> UringReport {
    let mut report = UringReport {
        findings: Vec::new(),
        usable: false,
    };
    report.add("kernel", true, kernel_release());
    let (ok, detail) = match setup::sysctl_io_uring_disabled() {
        None => (
            true,
            "no kernel.io_uring_disabled (before 6.6): not limited by sysctl".into(),
        ),
        Some(0) => (
            true,
            "kernel.io_uring_disabled=0: every process may use io_uring".into(),
        ),
        Some(1) => (
            false,
            "kernel.io_uring_disabled=1: only members of kernel.io_uring_group may set up rings"
                .into(),
        ),
        Some(n) => (
            false,
            format!("kernel.io_uring_disabled={n}: io_uring is off; the runtime uses epoll"),
        ),
    };
    report.add("io_uring_disabled", ok, detail);
    report.add("RLIMIT_MEMLOCK", true, memlock());

    let built = match setup::build(&RingConfig::default()) {
        Ok(built) => built,
        Err(e) => {
            report.add("io_uring_setup", false, e.to_string());
            return report;
        }
    };
    report.usable = true;
    report.add("io_uring_setup", true, built.description.clone());
    setup_flags(&mut report);
    features(&mut report, &built.ring);
    opcodes(&mut report, &built.ring);
    buffer_rings(&mut report, &built.ring);
    registered_ring_fd(&mut report, &built.ring);
    direct_descriptors(&mut report, &built.ring, &built.opcodes);
    report
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|e| format!("release unknown ({e})"))
}

fn memlock() -> String {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return format!("unknown ({})", io::Error::last_os_error());
    }
    let show = |v: libc::rlim_t| match v {
        libc::RLIM_INFINITY => "unlimited".to_string(),
        v => format!("{} KiB", v / 1024),
    };
    format!(
        "{} (hard {}); rings count against it only before 5.12 (later, the memory cgroup)",
        show(limit.rlim_cur),
        show(limit.rlim_max)
    )
}

/// Each setup flag the driver uses or may use, tried alone on a small ring.
fn setup_flags(report: &mut UringReport) {
    type Apply = fn(&mut io_uring::Builder);
    let flags: [(&str, Apply, &str); 4] = [
        (
            "SINGLE_ISSUER|DEFER_TASKRUN",
            |b| {
                b.setup_single_issuer().setup_defer_taskrun();
            },
            "completions run only when the reactor waits (6.1+); without it, COOP_TASKRUN",
        ),
        (
            "COOP_TASKRUN",
            |b| {
                b.setup_coop_taskrun().setup_taskrun_flag();
            },
            "the fallback (5.19+): completions need not interrupt the reactor",
        ),
        (
            "NO_SQARRAY",
            |b| {
                b.setup_no_sqarray();
            },
            "one indirection less per SQE (6.6+); used where accepted",
        ),
        (
            "SQPOLL",
            |b| {
                b.setup_sqpoll(10);
            },
            "a kernel thread polls the SQ (the sqpoll wake strategy)",
        ),
    ];
    for (name, apply, what) in flags {
        let mut builder = IoUring::builder();
        apply(&mut builder);
        let (ok, detail) = match builder.build(8) {
            Ok(_) => (true, format!("{name}: accepted; {what}")),
            Err(e) => (false, format!("{name}: refused ({e}); {what}")),
        };
        report.add("setup flag", ok, detail);
    }
}

fn features(report: &mut UringReport, ring: &IoUring) {
    let params = ring.params();
    let features = [
        (
            params.is_feature_ext_arg(),
            "EXT_ARG",
            "timed waits (5.11+), required",
        ),
        (
            params.is_feature_nodrop(),
            "NODROP",
            "no completion is dropped on overflow (5.5+)",
        ),
        (
            params.is_feature_fast_poll(),
            "FAST_POLL",
            "receives wait without a worker (5.7+)",
        ),
        (
            params.is_feature_min_timeout(),
            "MIN_TIMEOUT",
            "a wait may batch completions up to a bound (6.12+)",
        ),
        (
            params.is_feature_recvsend_bundle(),
            "RECVSEND_BUNDLE",
            "one completion for several received buffers (6.10+)",
        ),
    ];
    for (ok, name, what) in features {
        let state = if ok { "present" } else { "missing" };
        report.add("feature", ok, format!("{name}: {state}; {what}"));
    }
}

fn opcodes(report: &mut UringReport, ring: &IoUring) {
    let mut probe = Probe::new();
    if let Err(e) = ring.submitter().register_probe(&mut probe) {
        report.add("opcodes", false, format!("cannot probe: {e}"));
        return;
    }
    let missing: Vec<&str> = REQUIRED_OPCODES
        .iter()
        .filter(|(code, _)| !probe.is_supported(*code))
        .map(|(_, name)| *name)
        .collect();
    let detail = match missing.is_empty() {
        true => format!("all {} the driver needs", REQUIRED_OPCODES.len()),
        false => format!("missing {}: the driver cannot run", missing.join(", ")),
    };
    report.add("opcodes", missing.is_empty(), detail);
    let optional = [
        (
            opcode::MsgRingData::CODE,
            "MSG_RING",
            "the msg-ring wake strategy (5.18+)",
        ),
        (
            opcode::SendZc::CODE,
            "SEND_ZC",
            "zero-copy sends of 16 KiB and more (6.0+; the opt-in zero-copy-send fast path)",
        ),
    ];
    for (code, name, what) in optional {
        let ok = probe.is_supported(code);
        let state = if ok { "present" } else { "missing" };
        report.add("opcode", ok, format!("{name}: {state}; {what}"));
    }
}

fn registered_ring_fd(report: &mut UringReport, ring: &IoUring) {
    let (enter, why) = EnterFd::new(ring.as_raw_fd(), true);
    let ok = enter.registered().is_some();
    let why = why.unwrap_or_default();
    let detail = match ok {
        true => format!("{why}: io_uring_enter skips the fd lookup (5.18+)"),
        false => format!("{why}: io_uring_enter names the ring by its fd"),
    };
    report.add("ring fd", ok, detail);
}

fn direct_descriptors(report: &mut UringReport, ring: &IoUring, opcodes: &io_uring::Probe) {
    let table = FileTable::for_ring(ring, opcodes).and_then(|table| {
        table
            .try_register(ring)
            .map(|()| table)
            .map_err(|e| format!("the kernel refused a sparse file table: {e}"))
    });
    let (ok, detail) = match table {
        Ok(table) => (
            true,
            format!(
                "a table of {} slots: a socket's SQEs name its slot from its {REGISTER_AFTER}th \
                 operation on its reactor, sparing the kernel a file lookup each",
                table.size()
            ),
        ),
        Err(why) => (false, format!("{why}: SQEs name sockets by fd")),
    };
    report.add("direct descriptors", ok, detail);
}

fn buffer_rings(report: &mut UringReport, ring: &IoUring) {
    match BufferRings::register(ring, StreamBuffers::Bundles) {
        Ok(rings) => {
            report.add(
                "buffer ring (stream)",
                true,
                "registered: reads go through one multishot receive per socket, or late \
                 one-shot receives while the reactor is busy (a kernel before 6.0 refuses \
                 multishot with EINVAL, and reads fall back to one-shot)",
            );
            let (ok, detail) = match (rings.mode(), ring.params().is_feature_recvsend_bundle()) {
                (StreamBuffers::Bundles, _) => (
                    true,
                    "available: one completion for the buffers a receive fills (the opt-in \
                     receive-bundle fast path)",
                ),
                (_, true) => (
                    false,
                    "not used on 6.13.11-6.14.8, which hand bundled buffers out of order",
                ),
                (_, false) => (
                    false,
                    "no IORING_FEAT_RECVSEND_BUNDLE (6.10+): one completion per buffer",
                ),
            };
            report.add("receive bundles", ok, detail);
            let (ok, detail) = match &rings.datagram {
                Some(_) => (
                    true,
                    "registered: UDP receives go through multishot RECVMSG",
                ),
                None => (false, "refused: UDP receives are one-shot"),
            };
            report.add("buffer ring (datagram)", ok, detail);
            // Nothing was armed: no receive can write into the buffers once they are removed.
            rings.unregister(ring);
        }
        Err(e) => report.add(
            "buffer ring (stream)",
            false,
            format!("refused ({e}; buffer rings need 5.19+): every read is a one-shot receive"),
        ),
    }
    let (ok, detail) = match BufferRings::incremental_supported(ring) {
        Ok(()) => (
            true,
            "IOU_PBUF_RING_INC accepted (6.12+): stream receives may share large buffers \
             (the incremental-buffers fast path)"
                .into(),
        ),
        Err(e) => (
            false,
            format!("IOU_PBUF_RING_INC refused ({e}); needs 6.12+"),
        ),
    };
    report.add("incremental buffers", ok, detail);
}
