//! Resource limits: running out of fds, thousands of connections held open, a hundred thousand
//! connect/close cycles. The far side runs in a child process (this test binary, re-executed),
//! so that each side has its own fd table.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{backends, echo, raise_fd_limit, set_soft_fd_limit};
use runtime::net::{TcpListener, TcpStream};
use runtime::{Backend, BufResult, Builder};

const CHILD_ENV: &str = "LIMITS_CHILD";

/// The tests here count the process's fds and raise its limits: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("fds").count()
}

/// CPU time of process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let mut ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("tasks") {
        let stat = std::fs::read_to_string(task.expect("task").path().join("schedstat"));
        if let Some(v) = stat
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            ns += v;
        }
    }
    Duration::from_nanos(ns)
}

/// Starts this binary as a child playing `role` (see `child`), and waits for its report line.
/// The child exits when its stdin closes (drop the `Child`'s stdin, then wait).
// If this panics, the test fails and the child, whose stdin closes with it, exits on its own.
#[allow(clippy::zombie_processes)]
fn spawn_child(role: &str, args: &str) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{role} {args}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("child output") > 0,
            "child exited early"
        );
        if let Some((_, report)) = line.trim().split_once("CHILD ") {
            return (child, report.to_string());
        }
    }
}

fn finish(mut child: Child) {
    drop(child.stdin.take());
    let status = child.wait().expect("child");
    assert!(status.success(), "child failed: {status}");
}

/// Exits the process once stdin closes (the parent is done with us).
fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
}

/// The child side; does nothing unless started by `spawn_child`.
#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split(' ').collect();
    exit_when_stdin_closes();
    match parts[..] {
        // An echo server on `backend` with at most `limit` fds.
        ["server", backend, limit] => {
            set_soft_fd_limit(limit.parse().expect("limit"));
            let backend: Backend = backend.parse().expect("backend");
            Builder::new()
                .backend(backend)
                .reactors(1)
                .pool_threads(0)
                .block_on(async {
                    common::assert_backend(backend);
                    let any = "127.0.0.1:0".parse().expect("addr");
                    let addr = runtime::serve(any, echo).await.expect("serve").local_addr();
                    println!("CHILD {addr}");
                    std::future::pending::<()>().await
                });
        }
        // `count` blocking clients: connect all, one echo each, hold them open.
        ["clients", addr, count] => {
            raise_fd_limit(count.parse::<u64>().expect("count") + 256);
            let addr: SocketAddr = addr.parse().expect("addr");
            let count: usize = count.parse().expect("count");
            let mut held = Vec::with_capacity(count);
            for i in 0..count {
                let mut s = std::net::TcpStream::connect(addr).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(30)))
                    .expect("timeout");
                s.write_all(&(i as u32).to_le_bytes()).expect("send");
                held.push(s);
            }
            for (i, s) in held.iter_mut().enumerate() {
                let mut echo = [0u8; 4];
                s.read_exact(&mut echo).expect("echo");
                assert_eq!(echo, (i as u32).to_le_bytes(), "client {i}");
            }
            println!("CHILD held {}", held.len());
            std::thread::park();
        }
        _ => panic!("bad child spec {spec}"),
    }
}

#[test]
fn running_out_of_fds_backs_off_keeps_serving_and_recovers() {
    let _serial = serial();
    for backend in backends() {
        // 16 fds leave room for a handful of connections.
        let (server, addr) = spawn_child("server", &format!("{backend} 16"));
        let addr: SocketAddr = addr.parse().expect("addr");
        let mut clients: Vec<std::net::TcpStream> = (0..40)
            .map(|_| {
                let s = std::net::TcpStream::connect(addr).expect("connect (backlog)");
                s.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("timeout");
                s
            })
            .collect();
        // The first connection is served although later accepts fail with EMFILE.
        let mut echo = [0u8; 4];
        clients[0].write_all(b"ping").expect("send");
        clients[0].read_exact(&mut echo).expect("echo under EMFILE");
        // Failing accepts back off instead of spinning a core.
        let pid = server.id();
        let (cpu0, t0) = (cpu_time(pid), Instant::now());
        std::thread::sleep(Duration::from_millis(500));
        let busy = (cpu_time(pid) - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
        assert!(
            busy < 0.5,
            "{backend}: the server spins at {:.0}% of a core",
            busy * 100.0
        );
        eprintln!(
            "{backend}: under EMFILE the server used {:.1}% of a core",
            busy * 100.0
        );
        // Free fds: the waiting connections are accepted and served.
        let mut last = clients.pop().expect("a client");
        clients.truncate(1);
        last.write_all(b"late").expect("send");
        last.read_exact(&mut echo).expect("served after recovery");
        assert_eq!(&echo, b"late");
        finish(server);
    }
}

#[test]
fn eight_thousand_connections_held_and_served() {
    let _serial = serial();
    raise_fd_limit(8000 + 256);
    for backend in backends() {
        let report = Builder::new()
            .backend(backend)
            .reactors(1)
            .pool_threads(1)
            .block_on(async move {
                common::assert_backend(backend);
                let any = "127.0.0.1:0".parse().expect("addr");
                let addr = runtime::serve(any, echo).await.expect("serve").local_addr();
                runtime::pool::spawn_blocking(move || {
                    let (clients, report) = spawn_child("clients", &format!("{addr} 8000"));
                    finish(clients);
                    report
                })
                .await
                .expect("clients")
            });
        assert_eq!(report, "held 8000", "{backend}");
        eprintln!("{backend}: {report} connections open at once, each echoed");
    }
}

#[test]
fn hundred_thousand_connect_close_cycles_leak_no_fd() {
    let _serial = serial();
    let cycles: usize = std::env::var("CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100_000);
    for backend in backends() {
        let before = open_fds();
        let done = Builder::new()
            .backend(backend)
            .reactors(1)
            .pool_threads(0)
            .block_on(async move {
                common::assert_backend(backend);
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let addr = listener.local_addr().expect("addr");
                let acceptor = runtime::spawn(async move {
                    let mut accepted = 0usize;
                    while accepted < cycles {
                        let (s, _) = listener.accept().await.expect("accept");
                        // The server closes first, so TIME_WAIT lands on the listening side.
                        drop(s);
                        accepted += 1;
                    }
                    accepted
                });
                for _ in 0..cycles {
                    let c = TcpStream::connect(addr).await.expect("connect");
                    let BufResult(res, _) = c.read(vec![0u8; 1]).await;
                    assert_eq!(res.expect("read"), 0, "the server closed");
                }
                acceptor.await.expect("acceptor")
            });
        assert_eq!(done, cycles);
        assert_eq!(
            open_fds(),
            before,
            "{backend}: fds leaked over {cycles} cycles"
        );
        eprintln!("{backend}: {cycles} connect/close cycles, {before} fds before and after");
    }
}
