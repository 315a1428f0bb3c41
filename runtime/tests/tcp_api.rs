//! The rest of the socket API: incoming(), shutdown, addresses, options.

use std::future::poll_fn;
use std::net::Shutdown;
use std::pin::Pin;

use futures_core::Stream;
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
