//! Example servers run in a child process (this test binary, re-executed for its `child` test),
//! killed and reaped if the test fails first.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};

/// The child process.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this binary's `child` test with `env` set, and waits for its startup line. Returns
/// the child, what follows `listening on ` (the address and the backend), and its stderr if
/// `stderr` asks to read it (otherwise it goes to the test's). The child's other stdout is
/// drained by a thread: its test harness fails if it cannot print its result.
pub fn start_child(env: (&str, &str), stderr: bool) -> (Server, String, Option<ChildStderr>) {
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .stdout(Stdio::piped())
        .stderr(if stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .spawn()
        .expect("spawn child");
    let mut child = Server(child);
    let mut out = BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("child stdout") > 0,
            "child exited early"
        );
        // The harness may print `test child ... ` first, on the same line.
        if let Some((_, rest)) = line.split_once("listening on ") {
            let rest = rest.trim_end().to_string();
            let err = child.0.stderr.take();
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return (child, rest, err);
        }
    }
}

/// Splits a startup line's rest (`<where> (backend: <name>)`) and checks the backend.
pub fn listening_at(rest: &str, backend: &str) -> String {
    let (at, named) = rest
        .rsplit_once(" (backend: ")
        .unwrap_or_else(|| panic!("no backend in the startup line: {rest}"));
    assert_eq!(
        named,
        format!("{backend})"),
        "asked for {backend} (is RUNTIME_BACKEND set?)"
    );
    at.to_string()
}
