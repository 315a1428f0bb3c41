//! `Server::shutdown`: connections in flight when it begins finish, new connections are
//! refused, and connections still running at the deadline are dropped so that shutdown ends.

use std::io::{ErrorKind, Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use runtime::time::timeout;
use runtime::BufResult;

/// A blocking client: connects, sends `request`, returns the socket.
fn send_request(addr: std::net::SocketAddr, request: &[u8]) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(request).expect("send");
    s
}

/// Three requests are in flight when shutdown begins; their handlers wait for the server's
/// `draining` signal before they answer. Every answer arrives, a new connection is refused,
/// and the report counts three connections finished.
#[runtime::test(reactors = 2, pool_threads = 2)]
async fn requests_in_flight_finish_and_new_connections_are_refused() {
    let server = runtime::Server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let draining = server.draining();
    let (arrived, arrivals) = mpsc::channel::<()>();
    server
        .serve(move |stream| {
            let arrived = arrived.clone();
            let draining = draining.clone();
            async move {
                let BufResult(res, buf) = stream.read(vec![0u8; 64]).await;
                let n = res.expect("read");
                arrived.send(()).expect("report");
                draining.wait().await;
                let reply = [b"done:".as_slice(), &buf[..n]].concat();
                stream.write_all(reply).await.0.expect("reply");
            }
        })
        .expect("serve");
    assert!(
        server.serve(|_| async {}).is_err(),
        "a second serve is refused"
    );
    let addr = server.local_addr();
    let clients: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = send_request(addr, format!("req{i}").as_bytes());
                let mut reply = String::new();
                s.read_to_string(&mut reply).expect("reply");
                reply
            })
        })
        .collect();
    runtime::pool::spawn_blocking(move || (0..3).try_for_each(|_| arrivals.recv()))
        .await
        .expect("arrival task")
        .expect("three requests arrived");
    assert_eq!(server.connections(), 3);

    server.stop_accepting().await;
    let refused = runtime::pool::spawn_blocking(move || std::net::TcpStream::connect(addr))
        .await
        .expect("connect task");
    assert_eq!(
        refused
            .expect_err("a connection after shutdown began")
            .kind(),
        ErrorKind::ConnectionRefused
    );
    let report = timeout(
        Duration::from_secs(30),
        server.shutdown(Duration::from_secs(20)),
    )
    .await
    .expect("shutdown ends");
    assert_eq!(
        report,
        runtime::ShutdownReport {
            finished: 3,
            cancelled: 0
        }
    );
    // Joined off the reactor: on io_uring the closes go to the kernel when the reactor next
    // enters the ring, which a blocked reactor never does.
    let replies = runtime::pool::spawn_blocking(move || {
        clients
            .into_iter()
            .map(|c| c.join().expect("client"))
            .collect::<Vec<_>>()
    })
    .await
    .expect("join task");
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply, &format!("done:req{i}"));
    }
}

/// A connection that never finishes is dropped at the deadline: shutdown ends, and the client
/// sees its connection closed.
#[runtime::test(pool_threads = 2)]
async fn connections_still_running_at_the_deadline_are_dropped() {
    let (arrived, arrivals) = mpsc::channel::<()>();
    let server = runtime::serve("127.0.0.1:0".parse().expect("addr"), move |stream| {
        let arrived = arrived.clone();
        async move {
            let _ = stream.read(vec![0u8; 64]).await;
            arrived.send(()).expect("report");
            std::future::pending::<()>().await;
        }
    })
    .await
    .expect("serve");
    let addr = server.local_addr();
    let client = runtime::pool::spawn_blocking(move || {
        let mut s = send_request(addr, b"hang");
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).map(|_| rest)
    });
    runtime::pool::spawn_blocking(move || arrivals.recv())
        .await
        .expect("arrival task")
        .expect("arrival");
    let report = timeout(
        Duration::from_secs(30),
        server.shutdown(Duration::from_millis(50)),
    )
    .await
    .expect("shutdown ends after the deadline");
    assert_eq!(
        report,
        runtime::ShutdownReport {
            finished: 0,
            cancelled: 1
        }
    );
    let rest = client.await.expect("client").expect("closed cleanly");
    assert!(rest.is_empty(), "the dropped connection sent {rest:?}");
}
