//! A bounded soak: mixed load (echo inline and offloaded, HTTP keep-alive with pipelining,
//! connection churn) against the example handlers running in a child process, checking every
//! reply, then that the server's memory and fds did not grow.
//!
//! CI runs it for 5 seconds on each backend; the full form is `SOAK_SECS=60 cargo test --release
//! -p examples --test soak -- --nocapture`. `SOAK_BACKEND=uring|epoll` runs one backend only.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use examples::{echo::echo, http, Placement};
use runtime::{Backend, Builder};

const CHILD_ENV: &str = "SOAK_SERVER";

/// The server side; does nothing unless started by the test below.
#[test]
fn server() {
    let Ok(backend) = std::env::var(CHILD_ENV) else {
        return;
    };
    let backend: Backend = backend.parse().expect("backend");
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    Builder::new()
        .backend(backend)
        .reactors(2)
        .pool_threads(2)
        .block_on(async {
            let info = runtime::running_backend().expect("in a runtime");
            assert_eq!(Backend::from(info.kind()), backend, "runs on {info}");
            let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
            let inline = runtime::serve(any, |s| async move {
                let _ = echo(s, Placement::Inline).await;
            });
            let inline = inline.await;
            let offload = runtime::serve(any, |s| async move {
                let _ = echo(s, Placement::Offload).await;
            });
            let offload = offload.await;
            let http = runtime::serve(any, |s| async move {
                let _ = http::serve(s, Placement::Inline).await;
            });
            let http = http.await;
            let (inline, offload, http) = (
                inline.expect("serve").local_addr(),
                offload.expect("serve").local_addr(),
                http.expect("serve").local_addr(),
            );
            println!("SOAK {inline} {offload} {http}");
            std::future::pending::<()>().await
        });
}

fn proc_status(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .count();
    (rss_kb, fds)
}

/// Replies received and checked against what was sent (a wrong or missing reply panics the
/// client instead).
struct Counts {
    verified: AtomicU64,
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

fn echo_client(addr: SocketAddr, seed: u64, stop: &AtomicBool, counts: &Counts) {
    let mut s = connect(addr);
    let mut x = seed | 1;
    while !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 1 + (x % 2000) as usize;
        let msg: Vec<u8> = (0..len).map(|i| (x as usize + i) as u8).collect();
        s.write_all(&msg).expect("echo send");
        let mut got = vec![0u8; len];
        s.read_exact(&mut got).expect("echo reply");
        assert_eq!(got, msg, "corrupted echo");
        counts.verified.fetch_add(1, Ordering::Relaxed);
    }
}

fn http_client(addr: SocketAddr, churn: bool, stop: &AtomicBool, counts: &Counts) {
    let request = b"GET /plaintext HTTP/1.1\r\nHost: soak\r\n\r\n";
    let depth = if churn { 1 } else { 4 };
    let mut s = connect(addr);
    while !stop.load(Ordering::Relaxed) {
        if churn {
            s = connect(addr);
        }
        s.write_all(&request.repeat(depth)).expect("http send");
        let mut got = vec![0u8; http::HELLO.len() * depth];
        s.read_exact(&mut got).expect("http reply");
        assert_eq!(got, http::HELLO.repeat(depth), "corrupted response");
        counts.verified.fetch_add(depth as u64, Ordering::Relaxed);
    }
}

#[test]
fn soak_mixed_load_loses_nothing_and_leaks_nothing() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let backends = match std::env::var("SOAK_BACKEND") {
        Ok(one) => vec![one],
        Err(_) if Builder::new().backend(Backend::Uring).build().is_ok() => {
            vec!["uring".into(), "epoll".into()]
        }
        Err(_) => {
            eprintln!("io_uring refused by this kernel: the soak runs on epoll only");
            vec!["epoll".into()]
        }
    };
    for backend in backends {
        soak(&backend, secs);
    }
}

fn soak(backend: &str, secs: u64) {
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["server", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, backend)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("server");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addrs: Vec<SocketAddr> = loop {
        let line = lines.next().expect("server output").expect("line");
        if let Some((_, rest)) = line.split_once("SOAK ") {
            break rest.split(' ').map(|a| a.parse().expect("addr")).collect();
        }
    };
    let pid = child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts {
        verified: AtomicU64::new(0),
    });
    let mut clients = Vec::new();
    let jobs: Vec<(usize, u64)> = vec![
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 4),
        (1, 5),
        (2, 0),
        (2, 0),
        (2, 1),
    ];
    for (i, (kind, seed)) in jobs.into_iter().enumerate() {
        let (stop, counts, addr) = (stop.clone(), counts.clone(), addrs[kind]);
        clients.push(std::thread::spawn(move || match kind {
            0 | 1 => echo_client(addr, seed * 7919 + i as u64, &stop, &counts),
            _ => http_client(addr, seed == 1, &stop, &counts),
        }));
    }
    // Warm up, take the baseline, run, stop, measure.
    std::thread::sleep(Duration::from_secs(1));
    let (rss0, fds0) = proc_status(pid);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("a client saw a lost or corrupted reply");
    }
    let (rss1, fds1) = proc_status(pid);
    let verified = counts.verified.load(Ordering::Relaxed);
    drop(child.stdin.take());
    let _ = child.wait();
    eprintln!(
        "soak {backend}: {verified} replies checked in {:?}; rss {rss0} -> {rss1} kB, fds {fds0} -> {fds1}",
        started.elapsed()
    );
    assert!(verified > 1000, "{backend}: the load ran");
    assert!(
        rss1 < rss0 + 16 * 1024,
        "{backend}: server memory grew from {rss0} to {rss1} kB"
    );
    assert!(
        fds1 <= fds0 + 4,
        "{backend}: server fds grew from {fds0} to {fds1}"
    );
}
