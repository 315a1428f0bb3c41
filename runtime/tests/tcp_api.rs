//! The rest of the socket API: incoming(), shutdown, addresses, options.

use std::future::poll_fn;
use std::net::Shutdown;
use std::pin::Pin;

use futures_core::Stream;

mod common;

use runtime::net::{TcpListener, TcpStream};
use runtime::BufResult;

#[runtime::test]
async fn incoming_yields_each_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let clients = runtime::spawn(async move {
        let mut streams = Vec::new();
        for _ in 0..3 {
            streams.push(TcpStream::connect(addr).await.expect("connect"));
        }
        streams
    });
    let mut incoming = listener.incoming();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let stream = poll_fn(|cx| Pin::new(&mut incoming).poll_next(cx))
            .await
            .expect("incoming never ends")
            .expect("accept");
        peers.push(stream.peer_addr().expect("peer_addr"));
    }
    let clients = clients.await.expect("clients");
    let mut locals: Vec<_> = clients
        .iter()
        .map(|c| c.local_addr().expect("local"))
        .collect();
    locals.sort();
    peers.sort();
    assert_eq!(peers, locals, "each accepted peer is one of our clients");
}

#[runtime::test]
async fn shutdown_write_is_seen_as_eof_and_the_other_direction_still_works() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, peer) = listener.accept().await.expect("accept");
    assert_eq!(peer, client.local_addr().expect("local"));
    assert_eq!(
        client.peer_addr().expect("peer"),
        listener.local_addr().expect("addr")
    );

    client.set_nodelay(true).expect("nodelay");
    assert!(client.nodelay().expect("nodelay"));
    client.set_nodelay(false).expect("nodelay");
    assert!(!client.nodelay().expect("nodelay"));

    let BufResult(res, _) = client.write_all(b"last words".to_vec()).await;
    res.expect("write");
    client.shutdown(Shutdown::Write).await.expect("shutdown");
    let mut got = Vec::new();
    loop {
        let BufResult(res, buf) = server.read(vec![0u8; 64]).await;
        match res.expect("read") {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(got, b"last words");
    // The half-closed client still reads what the server sends.
    let BufResult(res, _) = server.write_all(b"reply".to_vec()).await;
    res.expect("write");
    let BufResult(res, buf) = client.read(vec![0u8; 64]).await;
    assert_eq!(&buf[..res.expect("read")], b"reply");
}

/// `Shutdown::Read` ends our reads (end of file at once) and `Shutdown::Both` also ends our
/// writes; the peer sees end of file.
#[runtime::test]
async fn shutdown_read_and_both() {
    let (client, server) = common::pair().await;
    client
        .shutdown(Shutdown::Read)
        .await
        .expect("shutdown read");
    let BufResult(res, _) = client.read(vec![0u8; 16]).await;
    assert_eq!(res.expect("read after SHUT_RD"), 0);
    // The write direction still works.
    let BufResult(res, _) = client.write_all(b"still".to_vec()).await;
    res.expect("write after SHUT_RD");
    let BufResult(res, buf) = server.read(vec![0u8; 16]).await;
    assert_eq!(&buf[..res.expect("read")], b"still");

    server
        .shutdown(Shutdown::Both)
        .await
        .expect("shutdown both");
    let BufResult(res, _) = server.read(vec![0u8; 16]).await;
    assert_eq!(res.expect("read after SHUT_RDWR"), 0);
    let BufResult(res, _) = server.write(b"late".to_vec()).await;
    assert_eq!(
        res.expect_err("a write after SHUT_RDWR").kind(),
        std::io::ErrorKind::BrokenPipe
    );
}

/// The owned halves: reads and vectored reads on one, writes, vectored writes and shutdown on
/// the other, addresses on both, from different tasks.
#[runtime::test]
async fn owned_halves_read_write_and_shut_down() {
    let (client, server) = common::pair().await;
    let (read_half, write_half) = server.into_split();
    assert_eq!(
        read_half.peer_addr().expect("peer"),
        client.local_addr().expect("local")
    );
    let writer = runtime::spawn(async move {
        let BufResult(res, _) = write_half.write(b"one ".to_vec()).await;
        assert_eq!(res.expect("write"), 4);
        let BufResult(res, _) = write_half
            .writev(vec![b"two ".to_vec(), b"three".to_vec()])
            .await;
        assert_eq!(res.expect("writev"), 9);
        let BufResult(res, _) = write_half.write_all(b"!".to_vec()).await;
        res.expect("write_all");
        write_half
            .shutdown(Shutdown::Write)
            .await
            .expect("shutdown");
    });
    let mut got = Vec::new();
    loop {
        let BufResult(res, buf) = client.read(vec![0u8; 64]).await;
        match res.expect("read") {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(got, b"one two three!");
    writer.await.expect("writer");

    let BufResult(res, _) = client.write_all(b"abcdef".to_vec()).await;
    res.expect("write");
    client.shutdown(Shutdown::Write).await.expect("shutdown");
    let mut got = Vec::new();
    while got.len() < 6 {
        let BufResult(res, bufs) = read_half
            .readv(vec![Vec::with_capacity(2), Vec::with_capacity(8)])
            .await;
        res.expect("readv");
        for b in bufs {
            got.extend_from_slice(&b);
        }
    }
    assert_eq!(got, b"abcdef");
    let BufResult(res, buf) = read_half.read(vec![0u8; 8]).await;
    assert_eq!(res.expect("read"), 0, "{buf:?}");
}

/// `set_linger(Some(0))` resets the connection on close; `set_linger(None)` closes it
/// gracefully (the peer reads end of file).
#[runtime::test]
async fn linger_zero_resets_and_linger_none_closes() {
    let (client, server) = common::pair().await;
    server
        .set_linger(Some(std::time::Duration::ZERO))
        .expect("linger 0");
    drop(server);
    let BufResult(res, _) = client.read(vec![0u8; 16]).await;
    assert_eq!(
        res.expect_err("a reset").kind(),
        std::io::ErrorKind::ConnectionReset
    );

    let (client, server) = common::pair().await;
    server
        .set_linger(Some(std::time::Duration::ZERO))
        .expect("linger 0");
    server.set_linger(None).expect("linger off");
    drop(server);
    let BufResult(res, _) = client.read(vec![0u8; 16]).await;
    assert_eq!(res.expect("end of file"), 0);
}

/// IPv6 on `::1`, where the machine has it.
#[runtime::test]
async fn ipv6_loopback() {
    let listener = match TcpListener::bind("[::1]:0") {
        Ok(l) => l,
        Err(e) => return eprintln!("skipped: no IPv6 loopback here: {e}"),
    };
    let addr = listener.local_addr().expect("addr");
    assert!(addr.is_ipv6());
    let client = TcpStream::connect(addr).await.expect("connect");
    let (server, peer) = listener.accept().await.expect("accept");
    assert_eq!(peer, client.local_addr().expect("local"));
    let BufResult(res, _) = client.write_all(b"v6".to_vec()).await;
    res.expect("write");
    let BufResult(res, buf) = server.read(vec![0u8; 4]).await;
    assert_eq!(&buf[..res.expect("read")], b"v6");
}

/// `connect` tries each address in turn: a refused one is skipped for the next; when all are
/// refused, the error names the last.
#[runtime::test]
async fn connect_falls_back_to_the_next_address() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    }; // closed again: connecting there is refused
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open = listener.local_addr().expect("addr");
    let client = TcpStream::connect(&[closed, open][..])
        .await
        .expect("the second address accepts");
    assert_eq!(client.peer_addr().expect("peer"), open);
    let err = TcpStream::connect(&[closed][..])
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(err.to_string().contains(&closed.to_string()), "{err}");
}

/// `serve` on an address another socket holds (without `SO_REUSEPORT`) is an error.
#[runtime::test]
async fn serve_on_a_taken_address_is_an_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let err = runtime::serve(addr, |_| async {})
        .await
        .expect_err("the address is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
}
