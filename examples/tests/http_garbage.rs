//! Garbage to the HTTP example gets a 400 and a closed connection, never a panic, on every
//! backend; well-formed requests around it are answered.

use std::time::Duration;

use examples::http::{serve, HELLO};
use examples::Placement;
use runtime::net::{TcpListener, TcpStream};
use runtime::BufResult;

async fn exchange(request: &[u8], placement: Placement) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    let served = runtime::spawn(serve(server, placement));
    let BufResult(res, _) = client.write_all(request.to_vec()).await;
    res.expect("send");
    let mut got = Vec::new();
    loop {
        let read = runtime::time::timeout(Duration::from_secs(10), client.read(vec![0u8; 4096]));
        let BufResult(res, buf) = read.await.expect("the server answers and closes");
        match res {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    served
        .await
        .expect("no panic")
        .expect("the handler ends cleanly");
    got
}

#[runtime::test(pool_threads = 1)]
async fn garbage_gets_400_then_close() {
    for placement in [Placement::Inline, Placement::Offload] {
        let mut request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
        request.extend_from_slice(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n");
        let got = exchange(&request, placement).await;
        assert!(
            got.starts_with(HELLO),
            "the request before the garbage is answered"
        );
        let rest = &got[HELLO.len()..];
        assert!(
            rest.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
            "{:?}",
            String::from_utf8_lossy(rest)
        );
    }
}

#[runtime::test(pool_threads = 1)]
async fn an_oversized_head_gets_400_then_close() {
    let mut request = b"GET / HTTP/1.1\r\nX-Junk: ".to_vec();
    request.resize(40_000, b'a');
    let got = exchange(&request, Placement::Inline).await;
    assert!(got.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
}
