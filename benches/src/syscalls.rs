//! Syscalls made by a server process, counted by `perf stat -e raw_syscalls:sys_enter`.
//!
//! Enabling the syscall tracepoint slows every syscall on the machine a little, so the harness
//! counts in a pass of its own, never while it measures CPU time.

use std::io::{self, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const EVENT: &str = "raw_syscalls:sys_enter";

/// Whether `perf` can count syscalls here; the reason if not.
pub fn available() -> Result<(), String> {
    let out = Command::new("perf")
        .args(["stat", "-x,", "-e", EVENT, "--", "true"])
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("perf not found ({e}); install linux-perf to count syscalls"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "perf cannot count {EVENT}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A running `perf stat` attached to one process.
#[derive(Debug)]
pub struct SyscallCount {
    perf: Child,
}

impl SyscallCount {
    /// Attaches to every thread of `pid`; counting starts once perf is set up (a fraction of
    /// a second), so start it before the load.
    pub fn attach(pid: u32) -> io::Result<Self> {
        let perf = Command::new("perf")
            .args(["stat", "-x,", "-e", EVENT, "-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        // perf prints nothing when it is ready; give it time to open its counters.
        std::thread::sleep(Duration::from_millis(300));
        Ok(SyscallCount { perf })
    }

    /// Stops counting; returns the count.
    pub fn finish(mut self) -> io::Result<u64> {
        // SAFETY: kill has no memory-safety preconditions; the pid is our live child's.
        unsafe { libc::kill(self.perf.id() as libc::pid_t, libc::SIGINT) };
        let mut err = String::new();
        if let Some(mut stderr) = self.perf.stderr.take() {
            stderr.read_to_string(&mut err)?;
        }
        self.perf.wait()?;
        err.lines()
            .find(|l| l.contains(EVENT))
            .and_then(|l| l.split(',').next())
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("unexpected perf output: {err:?}")))
    }
}
