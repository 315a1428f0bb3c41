//! tokio (`current_thread` and `multi_thread`): the same handler, and the hyper and UDP loops
//! through tokio's own types.

use std::io;

use super::{announce, Handler, Protocol};

pub(super) async fn serve_tokio(handler: Handler) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if handler.protocol == Protocol::Hyper {
        return serve_tokio_hyper().await;
    }
    if handler.protocol == Protocol::Udp {
        return serve_tokio_udp().await;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    announce(listener.local_addr()?)?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            stream.set_nodelay(true)?;
            let mut buf = vec![0u8; 4096];
            let mut pending = Vec::new();
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return io::Result::Ok(());
                }
                pending.extend_from_slice(&buf[..n]);
                let Some(out) = handler.answer(&mut pending) else {
                    return Ok(());
                };
                stream.write_all(&out).await?;
            }
        });
    }
}

/// The hyper example's service on tokio, through hyper-util's tokio glue.
async fn serve_tokio_hyper() -> io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    announce(listener.local_addr()?)?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new());
            builder.http2().timer(TokioTimer::new());
            let service = hyper::service::service_fn(examples::hyper_app::route);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// UDP echo on tokio: each datagram back to its sender.
async fn serve_tokio_udp() -> io::Result<()> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    announce(socket.local_addr()?)?;
    let mut buf = vec![0u8; examples::udp_echo::DATAGRAM_ROOM];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        socket.send_to(&buf[..n], from).await?;
    }
}
