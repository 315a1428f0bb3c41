//! UDP sockets on both backends: datagrams whole and in order, senders, connected sockets,
//! peeking, truncation as an error, options read back as set, names looked up, use from the
//! pool and from another reactor.

mod common;

use std::net::{Ipv4Addr, SocketAddr};

use runtime::net::UdpSocket;
use runtime::BufResult;

async fn bound() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.expect("bind")
}

#[runtime::test]
async fn datagrams_arrive_whole_with_their_sender() {
    let a = bound().await;
    let b = bound().await;
    let b_addr = b.local_addr().expect("addr");
    for len in [0usize, 1, 1200, 9000, 65_507] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let BufResult(sent, _) = a.send_to(payload.clone(), b_addr).await;
        assert_eq!(sent.expect("send_to"), len);
        let BufResult(got, buf) = b.recv_from(Vec::with_capacity(65_536)).await;
        let (n, from) = got.expect("recv_from");
        assert_eq!(n, len);
        assert_eq!(
            from,
            a.local_addr().expect("addr"),
            "the sender is reported"
        );
        assert_eq!(buf, payload, "a {len}-byte datagram arrives whole");
    }
}

#[runtime::test]
async fn many_queued_datagrams_keep_their_boundaries_and_order() {
    let a = bound().await;
    let b = bound().await;
    let b_addr = b.local_addr().expect("addr");
    // Sent before any receive starts: they queue in the socket.
    for i in 0..200u32 {
        let msg = format!("datagram {i}").into_bytes();
        a.send_to(msg, b_addr).await.0.expect("send_to");
    }
    for i in 0..200u32 {
        let BufResult(got, buf) = b.recv_from(Vec::with_capacity(64)).await;
        let (n, _) = got.expect("recv_from");
        assert_eq!(&buf[..n], format!("datagram {i}").as_bytes());
    }
}

#[runtime::test]
async fn a_datagram_longer_than_the_buffer_is_an_error_not_a_short_read() {
    let a = bound().await;
    let b = bound().await;
    a.send_to(vec![7u8; 100], b.local_addr().expect("addr"))
        .await
        .0
        .expect("send_to");
    let BufResult(got, buf) = b.recv_from(Vec::with_capacity(10)).await;
    let err = got.expect_err("truncation is reported");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("100 bytes"), "{err}");
    assert_eq!(buf, vec![7u8; 10], "the buffer holds the datagram's start");
    // The socket goes on: the next datagram is received normally.
    a.send_to(b"next".to_vec(), b.local_addr().expect("addr"))
        .await
        .0
        .expect("send_to");
    let BufResult(got, buf) = b.recv(Vec::with_capacity(10)).await;
    assert_eq!(got.expect("recv"), 4);
    assert_eq!(buf, b"next");
}

#[runtime::test]
async fn peek_leaves_the_datagram_queued() {
    let a = bound().await;
    let b = bound().await;
    a.send_to(b"peekaboo".to_vec(), b.local_addr().expect("addr"))
        .await
        .0
        .expect("send_to");
    let BufResult(got, buf) = b.peek_from(Vec::with_capacity(4)).await;
    let (n, from) = got.expect("peek_from: a short peek is not an error");
    assert_eq!((n, from), (4, a.local_addr().expect("addr")));
    assert_eq!(buf, b"peek");
    let BufResult(got, buf) = b.recv_from(Vec::with_capacity(64)).await;
    assert_eq!(got.expect("recv_from").0, 8);
    assert_eq!(buf, b"peekaboo", "the peeked datagram is received whole");
}

#[runtime::test]
async fn connected_sockets_send_and_recv_and_hear_only_their_peer() {
    let a = bound().await;
    let b = bound().await;
    let stranger = bound().await;
    let a_addr = a.local_addr().expect("addr");
    let b_addr = b.local_addr().expect("addr");
    a.connect(b_addr).await.expect("connect");
    b.connect(a_addr).await.expect("connect");
    assert_eq!(a.peer_addr().expect("peer"), b_addr);
    // A stranger's datagram is filtered out by the kernel for a connected socket.
    stranger
        .send_to(b"noise".to_vec(), b_addr)
        .await
        .0
        .expect("send_to");
    a.send(b"hello".to_vec()).await.0.expect("send");
    let BufResult(got, buf) = b.recv(Vec::with_capacity(16)).await;
    assert_eq!(got.expect("recv"), 5);
    assert_eq!(buf, b"hello");
}

#[runtime::test]
async fn sending_to_a_closed_port_reports_the_refusal() {
    let a = bound().await;
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.local_addr().expect("addr")
    };
    a.connect(closed).await.expect("connect");
    a.send(b"anyone?".to_vec())
        .await
        .0
        .expect("the send itself succeeds");
    // The ICMP port-unreachable comes back as the next receive's error.
    let BufResult(got, _) = a.recv(Vec::with_capacity(16)).await;
    assert_eq!(
        got.expect_err("refused").kind(),
        std::io::ErrorKind::ConnectionRefused
    );
}

#[runtime::test]
async fn options_read_back_as_set() {
    let s = bound().await;
    s.set_broadcast(true).expect("broadcast");
    assert!(s.broadcast().expect("broadcast"));
    s.set_ttl(17).expect("ttl");
    assert_eq!(s.ttl().expect("ttl"), 17);
    s.set_multicast_ttl_v4(3).expect("mcast ttl");
    assert_eq!(s.multicast_ttl_v4().expect("mcast ttl"), 3);
    s.set_multicast_loop_v4(false).expect("loop");
    assert!(!s.multicast_loop_v4().expect("loop"));
    let sock = runtime::net::socket2::SockRef::from(&s);
    sock.set_recv_buffer_size(1 << 16).expect("rcvbuf");
    assert!(sock.recv_buffer_size().expect("rcvbuf") >= 1 << 16);
}

#[runtime::test]
async fn multicast_join_and_leave_on_loopback() {
    let group = Ipv4Addr::new(239, 255, 42, 99);
    let receiver = UdpSocket::bind("0.0.0.0:0").await.expect("bind");
    let port = receiver.local_addr().expect("addr").port();
    if let Err(e) = receiver.join_multicast_v4(group, Ipv4Addr::LOCALHOST) {
        // A machine whose loopback has no multicast route cannot join; say so.
        eprintln!("skipped: loopback refuses multicast here: {e}");
        return;
    }
    let sender = bound().await;
    runtime::net::socket2::SockRef::from(&sender)
        .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
        .expect("multicast_if");
    sender.set_multicast_loop_v4(true).expect("loop");
    sender
        .send_to(b"to the group".to_vec(), (group, port))
        .await
        .0
        .expect("send_to group");
    let BufResult(got, buf) = receiver.recv_from(Vec::with_capacity(64)).await;
    assert_eq!(got.expect("recv_from").0, 12);
    assert_eq!(buf, b"to the group");
    receiver
        .leave_multicast_v4(group, Ipv4Addr::LOCALHOST)
        .expect("leave");
    let err = receiver
        .leave_multicast_v4(group, Ipv4Addr::LOCALHOST)
        .expect_err("not a member any more");
    assert_eq!(err.raw_os_error(), Some(libc::EADDRNOTAVAIL));
}

#[runtime::test]
async fn ipv6_datagrams() {
    let Ok(a) = UdpSocket::bind("[::1]:0").await else {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    };
    let b = UdpSocket::bind("[::1]:0").await.expect("bind");
    a.send_to(b"six".to_vec(), b.local_addr().expect("addr"))
        .await
        .0
        .expect("send_to");
    let BufResult(got, buf) = b.recv_from(Vec::with_capacity(8)).await;
    let (n, from) = got.expect("recv_from");
    assert_eq!((n, from), (3, a.local_addr().expect("addr")));
    assert_eq!(buf, b"six");
    let sock = runtime::net::socket2::SockRef::from(&b);
    sock.set_multicast_loop_v6(false).expect("loop v6");
    assert!(!sock.multicast_loop_v6().expect("loop v6"));
}

#[runtime::test]
async fn bind_and_send_to_by_name() {
    let a = UdpSocket::bind("localhost:0").await.expect("bind by name");
    let a_ip = a.local_addr().expect("addr").ip();
    assert!(a_ip.is_loopback());
    // The same first address of "localhost" that `bind` took, so the families match.
    let b = UdpSocket::bind(SocketAddr::new(a_ip, 0))
        .await
        .expect("bind");
    let port = b.local_addr().expect("addr").port();
    a.send_to(b"named".to_vec(), ("localhost", port))
        .await
        .0
        .expect("send_to by name");
    let BufResult(got, buf) = b.recv_from(Vec::with_capacity(8)).await;
    assert_eq!(got.expect("recv_from").0, 5);
    assert_eq!(buf, b"named");
    let err = a
        .send_to(b"x".to_vec(), "no-such-host.invalid:9")
        .await
        .0
        .expect_err("an unknown name");
    assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
}

#[runtime::test(reactors = 2, pool_threads = 1)]
async fn a_socket_is_used_from_the_pool_and_another_reactor() {
    let server = std::sync::Arc::new(bound().await);
    let server_addr = server.local_addr().expect("addr");
    // Echo on reactor 0.
    let echo = {
        let server = server.clone();
        runtime::spawn(async move {
            let mut buf = Vec::with_capacity(64);
            for _ in 0..2 {
                let BufResult(got, b) = server.recv_from(buf).await;
                let (n, from) = got.expect("recv_from");
                let BufResult(sent, b) = server.send_to(b, from).await;
                assert_eq!(sent.expect("echo"), n);
                buf = b;
                buf.clear();
            }
        })
    };
    let client = std::sync::Arc::new(bound().await);
    let ask = |client: std::sync::Arc<UdpSocket>, msg: &'static [u8]| async move {
        client
            .send_to(msg.to_vec(), server_addr)
            .await
            .0
            .expect("send_to");
        let BufResult(got, buf) = client.recv_from(Vec::with_capacity(64)).await;
        assert_eq!(got.expect("recv_from").1, server_addr);
        assert_eq!(buf, msg);
    };
    runtime::pool::spawn(ask(client.clone(), b"from the pool"))
        .await
        .expect("pool task");
    runtime::spawn_on(1, ask(client.clone(), b"from reactor 1"))
        .await
        .expect("reactor 1 task");
    echo.await.expect("echo");
}

#[runtime::test]
async fn std_sockets_go_in_and_out() {
    let std_socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("std bind");
    let addr = std_socket.local_addr().expect("addr");
    let socket = UdpSocket::from_std(std_socket).expect("from_std");
    let peer = bound().await;
    // Sent while the runtime holds the socket, received by std after the hand-over.
    peer.send_to(b"out".to_vec(), addr)
        .await
        .0
        .expect("send_to");
    let std_socket = socket
        .into_std()
        .expect("into_std of a socket not read yet");
    let mut buf = [0u8; 8];
    // Blocking mode, as std makes sockets; the datagram is already queued.
    let (n, from) = std_socket.recv_from(&mut buf).expect("std recv_from");
    assert_eq!(
        (&buf[..n], from),
        (&b"out"[..], peer.local_addr().expect("addr"))
    );

    let socket = UdpSocket::from_std(std_socket).expect("from_std again");
    peer.send_to(b"in".to_vec(), addr).await.0.expect("send_to");
    let BufResult(got, buf) = socket.recv_from(Vec::with_capacity(8)).await;
    assert_eq!(got.expect("recv_from").0, 2);
    assert_eq!(buf, b"in");
    match socket.into_std() {
        // Read through its multishot receive (io_uring), which may already hold the next
        // datagram: refused, and the socket comes back working.
        Err(refused) => {
            assert!(common::on_uring(), "epoll holds nothing back: {refused}");
            let socket = refused.into_inner();
            peer.send_to(b"again".to_vec(), addr)
                .await
                .0
                .expect("send_to");
            let BufResult(got, buf) = socket.recv_from(Vec::with_capacity(8)).await;
            assert_eq!(got.expect("recv_from").0, 5);
            assert_eq!(buf, b"again");
        }
        Ok(_) => assert!(
            !common::on_uring() || common::totals().one_shot_receives > 0,
            "handed over while its multishot receive was armed"
        ),
    }
}

/// On io_uring a `recv_from` loop over queued datagrams takes them from the socket's multishot
/// receive, not one submission each; with multishot receive off, each is a one-shot receive.
#[runtime::test]
async fn queued_datagrams_come_from_the_multishot_receive() {
    datagrams_received_one_shot(200, true).await;
}

#[runtime::test(multishot_receive = false)]
async fn queued_datagrams_with_multishot_off_are_one_shot_receives() {
    datagrams_received_one_shot(200, false).await;
}

async fn datagrams_received_one_shot(count: u32, multishot: bool) {
    let a = bound().await;
    let b = bound().await;
    let b_addr = b.local_addr().expect("addr");
    let before = common::totals().one_shot_receives;
    // The first receive arms the multishot receive (if any), then everything queues behind.
    let first = runtime::spawn({
        let b = std::rc::Rc::new(b);
        let b2 = b.clone();
        async move {
            let BufResult(got, _) = b2.recv_from(Vec::with_capacity(64)).await;
            got.expect("first");
            b
        }
    });
    a.send_to(b"first".to_vec(), b_addr).await.0.expect("send");
    let b = first.await.expect("first receive");
    for i in 0..count {
        a.send_to(i.to_le_bytes().to_vec(), b_addr)
            .await
            .0
            .expect("send");
    }
    for i in 0..count {
        let BufResult(got, buf) = b.recv_from(Vec::with_capacity(64)).await;
        assert_eq!(got.expect("recv_from").0, 4);
        assert_eq!(buf, i.to_le_bytes());
    }
    let one_shot = common::totals().one_shot_receives - before;
    eprintln!("{one_shot} one-shot receives for {} datagrams", count + 1);
    if common::on_uring() && multishot {
        // A few fall back while the socket's buffers run out (the kernel fills them faster
        // than the queue's cancel lands); the rest come from the multishot receive.
        assert!(
            one_shot * 10 < count as u64,
            "{one_shot} one-shot receives: the multishot receive was not used"
        );
    } else if common::on_uring() {
        assert!(one_shot > count as u64, "{one_shot} one-shot receives");
    }
}

/// The poll-based adapter (what a QUIC library's `poll_recv`/`try_send` needs): datagrams of
/// every size both ways, a poll abandoned before its datagram came loses nothing, a send polled
/// with a no-op waker goes out, and a staged send outlives its adapter. Run with the multishot
/// receive on and off (io_uring then receives through an owned operation kept across polls).
async fn poll_datagram_round_trips() {
    use std::future::poll_fn;
    use std::mem::MaybeUninit;
    use std::task::{Context, Poll, Waker};

    use runtime::net::{Inet, PollDatagram};

    let a = std::sync::Arc::new(bound().await);
    let b = std::sync::Arc::new(bound().await);
    let (a_addr, b_addr) = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
    let mut pa = PollDatagram::<Inet>::new(a.clone());
    let mut pb = PollDatagram::<Inet>::new(b.clone());
    let to_b = runtime::net::socket2::SockAddr::from(b_addr);
    let mut room = vec![MaybeUninit::<u8>::uninit(); 65_536];

    // Polled once before anything was sent: pending, and whatever it started is kept.
    let mut noop = Context::from_waker(Waker::noop());
    assert!(pb.poll_recv_from(&mut noop, &mut room).is_pending());

    for len in [1usize, 1200, 65_507] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 3 + len) as u8).collect();
        let sent = poll_fn(|cx| pa.poll_send_to(cx, &payload, &to_b))
            .await
            .expect("poll_send_to");
        assert_eq!(sent, len);
        let (n, from) = poll_fn(|cx| pb.poll_recv_from(cx, &mut room))
            .await
            .expect("poll_recv_from");
        assert_eq!((n, from), (len, a_addr));
        // SAFETY: the first `n` bytes were written by the receive.
        let got: Vec<u8> = room[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        assert!(got == payload, "{len} bytes whole");
    }

    // A send polled with a no-op waker (a `try_send`) goes out.
    match pa.poll_send_to(&mut noop, b"try", &to_b) {
        Poll::Ready(res) => assert_eq!(res.expect("try_send"), 3),
        Poll::Pending => panic!("an idle socket took no datagram"),
    }
    let (n, _) = poll_fn(|cx| pb.poll_recv_from(cx, &mut room))
        .await
        .expect("recv");
    assert_eq!(n, 3);

    // A short buffer: the datagram's length is reported as an error.
    poll_fn(|cx| pa.poll_send_to(cx, &[9u8; 100], &to_b))
        .await
        .expect("send");
    let err = poll_fn(|cx| pb.poll_recv_from(cx, &mut room[..10]))
        .await
        .expect_err("truncated");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);

    // Dropped right after a send was accepted: the datagram still goes out.
    poll_fn(|cx| pa.poll_send_to(cx, b"last words", &to_b))
        .await
        .expect("send");
    drop(pa);
    let BufResult(got, buf) = b.recv_from(Vec::with_capacity(32)).await;
    assert_eq!(got.expect("recv").0, 10);
    assert_eq!(buf, b"last words");
}

#[runtime::test]
async fn poll_datagram_with_multishot_receive() {
    poll_datagram_round_trips().await;
}

#[runtime::test(multishot_receive = false)]
async fn poll_datagram_with_one_shot_receives() {
    poll_datagram_round_trips().await;
}

/// UDP sockets dropped while their multishot receive holds datagrams give the buffers back to
/// the datagram ring (32 buffers): after 8 sockets each dropped with a full queue, a new
/// socket's queued datagrams still come from the multishot receive, whole.
#[runtime::test]
async fn datagram_buffers_of_dropped_sockets_go_back_to_the_ring() {
    let sender = bound().await;
    for _ in 0..8 {
        let socket = bound().await;
        let addr = socket.local_addr().expect("addr");
        sender.send_to(b"arm".to_vec(), addr).await.0.expect("send");
        socket
            .recv_from(Vec::with_capacity(8))
            .await
            .0
            .expect("arming receive");
        for _ in 0..12 {
            sender.send_to(vec![1u8; 512], addr).await.0.expect("send");
        }
        drop(socket);
    }
    datagrams_received_one_shot(100, true).await;
}
