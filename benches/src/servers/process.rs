//! A server in a child process (this executable in `serve` mode), pinned to one core, and the
//! counters it reports.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::{Protocol, ServerKind};

/// A server child process; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The child's stdin and stdout, for `metrics` requests.
    control: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
}

impl ServerProcess {
    /// Starts `kind` speaking `protocol` (with `work` per read) in a child process (this
    /// executable, `serve` mode) pinned to `cpu`.
    pub fn start(
        kind: ServerKind,
        protocol: Protocol,
        work: Duration,
        cpu: usize,
    ) -> io::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "serve",
                &kind.name(),
                protocol.name(),
                "--cpu",
                &cpu.to_string(),
                "--work-us",
                &work.as_micros().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => Ok(ServerProcess {
                child,
                addr,
                control: Mutex::new((stdin, stdout)),
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(io::Error::other(format!(
                    "{} did not start (printed {line:?})",
                    kind.name()
                )))
            }
        }
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Our servers' counters, summed over reactors (`None` for peers, which have none).
    pub fn metrics(&self, kind: ServerKind) -> io::Result<Option<HashMap<String, u64>>> {
        if !kind.is_ours() {
            return Ok(None);
        }
        let mut control = self
            .control
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?;
        let (stdin, stdout) = &mut *control;
        writeln!(stdin, "metrics")?;
        stdin.flush()?;
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let fields = line
            .trim()
            .strip_prefix("metrics ")
            .ok_or_else(|| io::Error::other(format!("bad metrics line {line:?}")))?;
        Ok(Some(
            fields
                .split_whitespace()
                .filter_map(|f| f.split_once('='))
                .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                .collect(),
        ))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
