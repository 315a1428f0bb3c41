//! The `udp_echo` and `unix_echo` examples, each in a child process (this test binary,
//! re-executed) on each backend: the startup line, every datagram up to 65,507 bytes echoed
//! whole to its sender, Unix connections echoed on both reactors, and a clean stop on SIGTERM.

use std::io::{Read, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::time::Duration;

mod common;

use common::{listening_at, start_child, Server};

const CHILD_ENV: &str = "UDP_UNIX_ECHO_CHILD";

/// The child: an example's `main` code with the flags the parent passes (space-separated);
/// the first word names the example.
#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut words: Vec<String> = spec.split(' ').map(str::to_string).collect();
    let example = words.remove(0);
    let res = if example == "udp" {
        let args = examples::server::parse_or_exit("udp_echo", words, 0);
        examples::server::builder(&args).block_on(examples::udp_echo::serve(&args))
    } else {
        let (path, args) = examples::unix_echo::parse(words).expect("flags");
        examples::server::builder(&args).block_on(examples::unix_echo::serve(&path, &args))
    };
    res.expect("the example failed");
}

/// Starts the child on `backend` with two reactors; returns it with where it listens.
fn start(spec: &str, backend: &str) -> (Server, String) {
    let env = format!("{spec} --backend {backend} --reactors 2");
    let (child, rest, _) = start_child((CHILD_ENV, &env), false);
    let at = listening_at(&rest, backend);
    (child, at)
}

/// Sends SIGTERM and waits for a successful exit.
fn stop(mut server: Server) {
    // SAFETY: kill has no memory effects; the pid is our live child's.
    let sent = unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) };
    assert_eq!(sent, 0, "SIGTERM: {}", std::io::Error::last_os_error());
    let status = server.0.wait().expect("wait");
    assert!(status.success(), "the example exited with {status}");
}

fn backends() -> [&'static str; 2] {
    ["uring", "epoll"]
}

#[test]
fn udp_echo_returns_every_datagram_whole() {
    for backend in backends() {
        let (server, addr) = start("udp --addr 127.0.0.1:0", backend);
        let client = UdpSocket::bind("127.0.0.1:0").expect("bind");
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = vec![0u8; 70_000];
        for len in [1usize, 100, 1472, 9000, 65_507] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 13 + len) as u8).collect();
            client.send_to(&payload, &addr).expect("send_to");
            let (n, from) = client.recv_from(&mut buf).expect("reply within 10 s");
            assert_eq!(from.to_string(), addr, "the reply comes from the server");
            assert_eq!(
                &buf[..n],
                &payload[..],
                "{len} bytes back whole on {backend}"
            );
        }
        // Several clients: each gets its own datagrams back (the kernel spreads them over the
        // two reactors' sockets by source port).
        let clients: Vec<UdpSocket> = (0..8)
            .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
            .collect();
        for (i, c) in clients.iter().enumerate() {
            c.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            c.send_to(format!("client {i}").as_bytes(), &addr)
                .expect("send");
        }
        for (i, c) in clients.iter().enumerate() {
            let n = c.recv(&mut buf).expect("reply");
            assert_eq!(&buf[..n], format!("client {i}").as_bytes());
        }
        stop(server);
    }
}

#[test]
fn unix_echo_serves_connections_on_both_reactors() {
    for backend in backends() {
        let path = std::env::temp_dir().join(format!("unix-echo-test-{}.sock", std::process::id()));
        let spec = format!("unix --path {}", path.display());
        let (server, at) = start(&spec, backend);
        assert_eq!(
            at,
            path.display().to_string(),
            "the startup line names the path"
        );
        // Four connections at once: two land on each reactor.
        let mut conns: Vec<UnixStream> = (0..4)
            .map(|_| UnixStream::connect(&path).expect("connect"))
            .collect();
        for (i, c) in conns.iter_mut().enumerate() {
            c.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let payload = vec![i as u8; 100_000];
            let mut writer = c.try_clone().expect("clone");
            let sender = std::thread::spawn(move || writer.write_all(&payload));
            let mut back = vec![0u8; 100_000];
            c.read_exact(&mut back).expect("echo");
            sender.join().expect("sender").expect("write");
            assert!(
                back.iter().all(|&b| b == i as u8),
                "connection {i} on {backend}"
            );
        }
        drop(conns);
        stop(server);
        assert!(!path.exists(), "the socket file is removed at the stop");
    }
}
