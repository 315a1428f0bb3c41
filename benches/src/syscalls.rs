//! Syscalls made by a server process, counted by `perf stat -e raw_syscalls:sys_enter`.
//!
//! Enabling the syscall tracepoint slows every syscall on the machine a little, so the harness
//! counts in a pass of its own, never while it measures CPU time.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

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

/// A running `perf stat` attached to one process, counting only between [`enable`] and
/// [`disable`] (perf's control fifos), so connection setup and warm-up are left out.
///
/// [`enable`]: SyscallCount::enable
/// [`disable`]: SyscallCount::disable
#[derive(Debug)]
pub struct SyscallCount {
    perf: Child,
    control: File,
    ack: BufReader<File>,
    fifos: PathBuf,
}

impl SyscallCount {
    /// Attaches to every thread of `pid`, not counting yet.
    pub fn attach(pid: u32) -> io::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let fifos = std::env::temp_dir().join(format!(
            "compare-perf-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&fifos)?;
        let (ctl, ack) = (fifos.join("ctl"), fifos.join("ack"));
        for fifo in [&ctl, &ack] {
            let path = std::ffi::CString::new(fifo.as_os_str().as_bytes())
                .map_err(|_| io::Error::other("fifo path with a NUL"))?;
            // SAFETY: `path` is a NUL-terminated string alive for the call.
            if unsafe { libc::mkfifo(path.as_ptr(), 0o600) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let control = format!("fifo:{},{}", ctl.display(), ack.display());
        let perf = Command::new("perf")
            .args([
                "stat",
                "-x,",
                "-e",
                EVENT,
                "-D",
                "-1",
                "--control",
                &control,
            ])
            .args(["-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        // Each open waits for perf to open the other end, which it does once set up.
        let control = OpenOptions::new().write(true).open(&ctl)?;
        let ack = BufReader::new(File::open(&ack)?);
        Ok(SyscallCount {
            perf,
            control,
            ack,
            fifos,
        })
    }

    /// Starts counting; returns once perf has.
    pub fn enable(&mut self) -> io::Result<()> {
        self.command("enable")
    }

    /// Stops counting; returns once perf has.
    pub fn disable(&mut self) -> io::Result<()> {
        self.command("disable")
    }

    fn command(&mut self, command: &str) -> io::Result<()> {
        writeln!(self.control, "{command}")?;
        let mut reply = String::new();
        self.ack.read_line(&mut reply)?;
        // perf ends each acknowledgement with a NUL, which starts the next line read.
        if reply.trim_matches(|c: char| c == '\0' || c.is_whitespace()) == "ack" {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "perf did not acknowledge {command:?}: {reply:?}"
            )))
        }
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

impl Drop for SyscallCount {
    fn drop(&mut self) {
        // Already reaped after `finish`, where these do nothing.
        let _ = self.perf.kill();
        let _ = self.perf.wait();
        let _ = std::fs::remove_dir_all(&self.fifos);
    }
}
