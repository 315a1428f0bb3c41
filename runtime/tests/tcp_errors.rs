//! Misbehaving peers and failed connections produce clear errors, never panics or hangs.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use runtime::net::{TcpListener, TcpStream};
use runtime::BufResult;

/// A blocking std listener whose single connection is handed to `peer` on its own thread.
fn std_peer(peer: impl FnOnce(std::net::TcpStream) + Send + 'static) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        peer(stream);
    });
    addr
}

/// Makes `close` send a RST instead of a FIN.
fn set_linger_zero(stream: &std::net::TcpStream) {
    runtime::net::socket2::SockRef::from(stream)
        .set_linger(Some(std::time::Duration::ZERO))
        .expect("setsockopt(SO_LINGER)");
}

#[runtime::test]
async fn peer_close_reads_as_zero() {
    let addr = std_peer(|mut s| {
        s.write_all(b"bye").expect("write");
    });
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut got = Vec::new();
    loop {
        let BufResult(res, buf) = stream.read(vec![0u8; 16]).await;
        match res.expect("read") {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(got, b"bye");
    // Reading again after EOF keeps returning 0.
    let BufResult(res, _) = stream.read(vec![0u8; 16]).await;
    assert_eq!(res.expect("read after eof"), 0);
}

#[runtime::test]
async fn peer_reset_is_an_error() {
    let addr = std_peer(|mut s| {
        let mut b = [0u8; 4];
        s.read_exact(&mut b).expect("read ping");
        set_linger_zero(&s);
        drop(s);
    });
    let stream = TcpStream::connect(addr).await.expect("connect");
    let BufResult(res, _) = stream.write_all(b"ping".to_vec()).await;
    res.expect("write");
    let BufResult(res, _) = stream.read(vec![0u8; 16]).await;
    let err = res.expect_err("a reset connection must not read as data or EOF");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
    // Writing to a reset connection fails too (EPIPE or ECONNRESET), without SIGPIPE.
    let mut write_err = None;
    for _ in 0..8 {
        let BufResult(res, _) = stream.write(vec![1u8; 1024]).await;
        if let Err(e) = res {
            write_err = Some(e);
            break;
        }
    }
    let err = write_err.expect("writes to a reset connection must fail");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{err}"
    );
}

#[runtime::test]
async fn connect_to_a_closed_port_is_refused() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    }; // closed here: nothing listens on `addr` any more
    let err = TcpStream::connect(addr)
        .await
        .expect_err("nothing listens there");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
    assert!(
        err.to_string().contains(&addr.to_string()),
        "error names the address: {err}"
    );
}

#[runtime::test]
async fn bind_to_a_used_port_is_an_error() {
    let first = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = first.local_addr().expect("addr");
    let err = TcpListener::bind(addr).expect_err("port in use");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
}

#[runtime::test]
async fn partial_writes_under_a_full_socket_buffer() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = TcpStream::connect(addr).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");

    // Nobody reads yet: a large write can only be taken in part.
    let data: Vec<u8> = (0..64usize << 20).map(|i| (i % 253) as u8).collect();
    let total = data.len();
    let BufResult(res, data) = client.write(data).await;
    let first = res.expect("write");
    assert!(
        first > 0 && first < total,
        "wrote {first} of {total} bytes in one call"
    );

    // The rest waits for the reader.
    let (_, write_half) = client.into_split();
    let rest = data[first..].to_vec();
    let writer = runtime::spawn(async move {
        let BufResult(res, _) = write_half.write_all(rest).await;
        res
    });
    for _ in 0..16 {
        runtime::yield_now().await;
    }
    assert!(
        !writer.is_finished(),
        "a write into a full buffer must wait for the reader"
    );

    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    while received < total {
        let BufResult(res, b) = server.read(buf).await;
        let n = res.expect("read");
        assert!(n > 0, "writer closed early");
        for (i, byte) in b[..n].iter().enumerate() {
            assert_eq!(
                *byte,
                ((received + i) % 253) as u8,
                "corrupt byte at {}",
                received + i
            );
        }
        received += n;
        buf = b;
    }
    writer.await.expect("writer task").expect("write_all");
}
