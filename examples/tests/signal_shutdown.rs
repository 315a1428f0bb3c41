//! The hyper example's process on SIGTERM: a request in flight at the signal completes, new
//! connections are refused, and the process exits by itself within the grace period. The
//! server runs in a child process (this test binary, re-executed) running the example's code.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hyper::service::service_fn;

mod common;

use common::{listening_at, start_child, Server};

const CHILD_ENV: &str = "SIGNAL_SHUTDOWN_CHILD";

/// The child: the hyper example's `main`, on the backend the parent names.
#[test]
fn child() {
    let Ok(backend) = std::env::var(CHILD_ENV) else {
        return;
    };
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--backend",
        &backend,
        "--reactors",
        "2",
    ];
    examples::server::run(
        "hyper",
        0,
        args.iter().map(|s| s.to_string()).collect(),
        |_, draining| {
            move |stream| {
                let service = service_fn(examples::hyper_app::route);
                examples::hyper_app::serve_connection(stream, None, service, draining.clone())
            }
        },
    );
}

/// The child, its address, and its stderr.
fn spawn_server(backend: &str) -> (Server, SocketAddr, BufReader<std::process::ChildStderr>) {
    let (child, rest, err) = start_child((CHILD_ENV, backend), true);
    let addr = listening_at(&rest, backend).parse().expect("address");
    (child, addr, BufReader::new(err.expect("piped stderr")))
}

/// Reads stderr lines until one contains `what`.
fn wait_for_line(err: &mut BufReader<std::process::ChildStderr>, what: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            err.read_line(&mut line).expect("child stderr") > 0,
            "child ended before {what:?}"
        );
        if line.contains(what) {
            return;
        }
    }
}

fn shutdown_on_sigterm(backend: &str) {
    let (mut child, addr, mut err) = spawn_server(backend);
    // A chunked request to /echo, of which only the first chunk is sent before the signal.
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    conn.write_all(
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n",
    )
    .expect("send the head");
    // The echo streams back: once "first" comes back, the request is surely in flight.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("first") {
        let n = conn.read(&mut buf).expect("read the echo");
        assert!(n > 0, "server closed before echoing");
        seen.extend_from_slice(&buf[..n]);
    }
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    wait_for_line(&mut err, "stopped accepting");
    let refused = TcpStream::connect(addr).expect_err("a connection after the signal");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // The request in flight completes.
    conn.write_all(b"6\r\nsecond\r\n0\r\n\r\n")
        .expect("send the rest");
    while !String::from_utf8_lossy(&seen).ends_with("0\r\n\r\n") {
        let n = conn.read(&mut buf).expect("read the rest of the echo");
        assert!(n > 0, "server closed before the response ended");
        seen.extend_from_slice(&buf[..n]);
    }
    let response = String::from_utf8_lossy(&seen).into_owned();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("first") && response.contains("second"),
        "{response}"
    );
    // The process exits by itself within the grace period (5 s), with some room.
    let deadline = Instant::now() + examples::server::GRACE + Duration::from_secs(10);
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            assert!(
                status.success(),
                "{backend}: child exited with {status}: {rest}"
            );
            assert!(
                rest.contains("1 connections finished, 0 cancelled"),
                "{backend}: {rest}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{backend}: still running after the grace period"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_finishes_requests_in_flight_and_refuses_new_ones() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    shutdown_on_sigterm("epoll");
    if runtime::Builder::new()
        .backend(runtime::Backend::Uring)
        .build()
        .is_ok()
    {
        shutdown_on_sigterm("uring");
    } else {
        eprintln!("io_uring refused by this kernel: only epoll is tested");
    }
}
