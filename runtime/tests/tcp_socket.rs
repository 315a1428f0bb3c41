//! `TcpSocket` options read back as set; listeners and streams in and out of `std` (a listener
//! bound by `std` serves connections); name resolution on the pool leaves the reactor serving.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use runtime::net::{lookup_host, TcpListener, TcpSocket, TcpStream};
use runtime::BufResult;

#[runtime::test]
async fn options_read_back_as_set() {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("reuseaddr");
    assert!(socket.reuseaddr().expect("reuseaddr"));
    socket.set_reuseport(true).expect("reuseport");
    assert!(socket.reuseport().expect("reuseport"));
    socket.set_send_buffer_size(64 * 1024).expect("sndbuf");
    assert!(socket.send_buffer_size().expect("sndbuf") >= 64 * 1024);
    socket.set_recv_buffer_size(64 * 1024).expect("rcvbuf");
    assert!(socket.recv_buffer_size().expect("rcvbuf") >= 64 * 1024);
    socket.set_keepalive(true).expect("keepalive");
    assert!(socket.keepalive().expect("keepalive"));
    socket
        .set_keepalive_params(
            Some(Duration::from_secs(30)),
            Some(Duration::from_secs(5)),
            Some(4),
        )
        .expect("keepalive params");
    assert_eq!(
        socket.keepalive_params().expect("params"),
        (Duration::from_secs(30), Duration::from_secs(5), 4)
    );
    socket
        .set_user_timeout(Some(Duration::from_millis(1500)))
        .expect("user timeout");
    assert_eq!(
        socket.user_timeout().expect("user timeout"),
        Some(Duration::from_millis(1500))
    );
    socket.set_nodelay(true).expect("nodelay");
    assert!(socket.nodelay().expect("nodelay"));
    socket
        .set_linger(Some(Duration::from_secs(3)))
        .expect("linger");
    assert_eq!(
        socket.linger().expect("linger"),
        Some(Duration::from_secs(3))
    );
    assert_eq!(socket.device().expect("device"), None);
    // Binding to a device needs CAP_NET_RAW; where allowed, it reads back.
    match socket.bind_device(Some(b"lo")) {
        Ok(()) => assert_eq!(
            socket.device().expect("device").as_deref(),
            Some(&b"lo"[..])
        ),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}"),
    }

    let v6 = match TcpSocket::new_v6() {
        Ok(v6) => v6,
        Err(e) => return eprintln!("skipped the IPv6 part: {e}"),
    };
    v6.set_only_v6(true).expect("v6only");
    assert!(v6.only_v6().expect("v6only"));
    v6.set_only_v6(false).expect("v6only");
    assert!(!v6.only_v6().expect("v6only"));
}

#[runtime::test]
async fn a_configured_socket_listens_and_connects() {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("reuseaddr");
    socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let addr = socket.local_addr().expect("addr");
    let listener = socket.listen(16).expect("listen");
    assert_eq!(listener.local_addr().expect("addr"), addr);

    let client = TcpSocket::new_for(addr).expect("socket");
    client.set_nodelay(true).expect("nodelay");
    let client = client.connect(addr).await.expect("connect");
    let (server, peer) = listener.accept().await.expect("accept");
    assert_eq!(peer, client.local_addr().expect("addr"));
    assert!(client.nodelay().expect("nodelay survives connect"));
    client.write_all(b"ping".to_vec()).await.0.expect("write");
    let BufResult(n, buf) = server.read(Vec::with_capacity(8)).await;
    assert_eq!(&buf[..n.expect("read")], b"ping");

    server.set_ttl(33).expect("ttl");
    assert_eq!(server.ttl().expect("ttl"), 33);
    server
        .set_keepalive_params(Some(Duration::from_secs(60)), None, Some(3))
        .expect("keepalive");
    let sock = runtime::net::socket2::SockRef::from(&server);
    assert!(sock.keepalive().expect("keepalive"));
    assert_eq!(sock.tcp_keepalive_retries().expect("retries"), 3);
    assert_eq!(server.linger().expect("linger"), None);

    // A refused connect names the address.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let err = TcpSocket::new_v4()
        .expect("socket")
        .connect(closed)
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(err.to_string().contains(&closed.to_string()), "{err}");
}

#[runtime::test]
async fn a_listener_bound_by_std_serves_connections() {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("std bind");
    let addr = std_listener.local_addr().expect("addr");
    let listener = TcpListener::from_std(std_listener).expect("from_std");
    let server = runtime::spawn(async move {
        for _ in 0..3 {
            let (stream, _) = listener.accept().await.expect("accept");
            common::echo(stream).await;
        }
        listener
    });
    for i in 0..3u8 {
        let client = TcpStream::connect(addr).await.expect("connect");
        client.write_all(vec![i; 100]).await.0.expect("write");
        let BufResult(n, buf) = client.read(Vec::with_capacity(200)).await;
        assert_eq!(&buf[..n.expect("read")], &[i; 100][..]);
    }
    let listener = server.await.expect("server");
    let std_listener = listener.into_std().expect("into_std");
    assert_eq!(std_listener.local_addr().expect("addr"), addr);
    // Back in std's hands: a blocking accept from a pool thread takes the next connection.
    let accepted = runtime::pool::spawn_blocking(move || std_listener.accept().map(|(_, a)| a));
    let client = TcpStream::connect(addr).await.expect("connect");
    let peer = accepted.await.expect("pool").expect("std accept");
    assert_eq!(peer, client.local_addr().expect("addr"));
}

#[runtime::test]
async fn a_stream_goes_to_std_and_back() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    // Not read yet: handed over on every backend.
    let std_server = server.into_std().expect("into_std");
    assert!(!is_nonblocking(&std_server), "std gets a blocking socket");
    let server = TcpStream::from_std(std_server).expect("from_std");
    client
        .write_all(b"round trip".to_vec())
        .await
        .0
        .expect("write");
    let BufResult(n, buf) = server.read(Vec::with_capacity(16)).await;
    assert_eq!(&buf[..n.expect("read")], b"round trip");
    let res = server.into_std();
    if common::on_uring() {
        // Read once through the multishot receive: refused, and given back working.
        let server = res.expect_err("armed").into_inner();
        client.write_all(b"again".to_vec()).await.0.expect("write");
        let BufResult(n, buf) = server.read(Vec::with_capacity(16)).await;
        assert_eq!(&buf[..n.expect("read")], b"again");
    } else {
        res.expect("epoll holds nothing back");
    }
}

fn is_nonblocking(stream: &std::net::TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: F_GETFL on an open fd takes no pointer.
    let flags = unsafe { libc::fcntl(stream.as_raw_fd(), libc::F_GETFL) };
    flags & libc::O_NONBLOCK != 0
}

#[runtime::test]
async fn names_resolve_on_the_pool_and_numbers_at_once() {
    let addrs: Vec<SocketAddr> = lookup_host("localhost:80").await.expect("lookup").collect();
    assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
    let addrs: Vec<SocketAddr> = lookup_host(("127.0.0.2", 7))
        .await
        .expect("numeric")
        .collect();
    assert_eq!(addrs, vec!["127.0.0.2:7".parse().unwrap()]);
    let err = lookup_host("no-such-host.invalid:1")
        .await
        .expect_err("unknown");
    assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
    let err = lookup_host("missing-port").await.expect_err("no port");
    assert!(err.to_string().contains("missing-port"), "{err}");
    // bind refuses a name rather than block the reactor on it.
    let err = TcpListener::bind("localhost:0").expect_err("a name");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("lookup_host"), "{err}");
}

/// A lookup that takes 500 ms (a delay injected into the lookup itself, on the pool) while
/// this reactor serves echo round trips: they go on during the lookup, and the connect by name
/// succeeds at the end.
#[runtime::test(pool_threads = 1)]
async fn a_slow_lookup_leaves_the_reactor_serving() {
    let echo_addr = common::spawn_echo_server();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accept = runtime::spawn(async move { listener.accept().await.map(|_| ()) });

    runtime::net::set_lookup_delay_for_tests(Duration::from_millis(500));
    let started = Instant::now();
    let connect = runtime::spawn(async move {
        let res = TcpStream::connect(("localhost", port)).await;
        (res.map(|_| ()), started.elapsed())
    });
    let echo = TcpStream::connect(echo_addr).await.expect("connect echo");
    let mut round_trips = 0;
    let mut buf = Vec::with_capacity(8);
    let connect = loop {
        if connect.is_finished() {
            break connect.await.expect("connect task");
        }
        echo.write_all(b"tick".to_vec()).await.0.expect("write");
        let BufResult(n, b) = echo.read(buf).await;
        assert_eq!(&b[..n.expect("read")], b"tick");
        buf = b;
        buf.clear();
        round_trips += 1;
    };
    runtime::net::set_lookup_delay_for_tests(Duration::ZERO);
    let (res, took) = connect;
    // "localhost" may resolve to ::1 first while the listener is on 127.0.0.1: the connect
    // then falls back to the next address.
    res.expect("connect by name");
    accept.await.expect("accept task").expect("accept");
    assert!(
        took >= Duration::from_millis(500),
        "the delay was injected: {took:?}"
    );
    assert!(
        round_trips >= 10,
        "the reactor served only {round_trips} round trips during a 500 ms lookup"
    );
    eprintln!("{round_trips} echo round trips during the slow lookup");
}
