//! The UDP echo server: each datagram back to its sender, whole, from one `SO_REUSEPORT`
//! socket per reactor.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use runtime::net::socket2::{Domain, Protocol, Socket, Type};
use runtime::net::UdpSocket;
use runtime::{BufResult, IoBuf};

use crate::server::{announce, print_stats, stop_signal, ServerArgs};
use crate::{Handling, Placement};

/// The room for one datagram: the largest UDP payload (65,507 bytes over IPv4, 65,527 over
/// IPv6) fits.
pub const DATAGRAM_ROOM: usize = 65_536;

/// A UDP socket bound to `addr` with `SO_REUSEPORT`, registered with the calling reactor.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("bind {addr}: {e}")))?;
    UdpSocket::from_std(socket.into())
}

/// Echoes each datagram to its sender (after `handling.work`, on the pool with `--offload`)
/// until the socket fails. A datagram that cannot be answered is reported and skipped.
pub async fn echo(socket: UdpSocket, handling: Handling) -> io::Result<()> {
    let socket = Arc::new(socket);
    let mut buf = Vec::with_capacity(DATAGRAM_ROOM);
    loop {
        let BufResult(res, b) = socket.recv_from(buf).await;
        let (n, from) = match res {
            Ok(got) => got,
            Err(e) if per_datagram(&e) => {
                eprintln!("datagram skipped: {e}");
                buf = b;
                continue;
            }
            Err(e) => return Err(e),
        };
        buf = match handling.placement {
            Placement::Inline => reply(&socket, b, n, from, handling).await,
            Placement::Offload => {
                let socket = socket.clone();
                runtime::pool::spawn(async move { reply(&socket, b, n, from, handling).await })
                    .await
                    .map_err(|e| io::Error::other(e.to_string()))?
            }
        };
        buf.clear();
    }
}

/// Sends the first `n` bytes of `buf` back to `to`, after `handling.work`; returns the buffer.
async fn reply(
    socket: &UdpSocket,
    buf: Vec<u8>,
    n: usize,
    to: SocketAddr,
    handling: Handling,
) -> Vec<u8> {
    handling.do_work();
    let BufResult(res, buf) = socket.send_to(buf.slice(..n), to).await;
    if let Err(e) = res {
        eprintln!("reply to {to} failed: {e}");
    }
    buf.into_inner()
}

/// Errors that concern one datagram (or one earlier reply), not the socket.
fn per_datagram(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::InvalidData | io::ErrorKind::ConnectionRefused
    )
}

/// Binds on every reactor, prints the startup line, and echoes until SIGINT or SIGTERM.
pub async fn serve(args: &ServerArgs) -> io::Result<()> {
    let stop = stop_signal()?;
    let first = bind_reuseport(args.addr)?;
    let addr = first.local_addr()?;
    let handling = args.handling;
    for reactor in 1..args.reactors {
        let socket = runtime::spawn_on(reactor, async move { bind_reuseport(addr) })
            .await
            .map_err(|e| io::Error::other(e.to_string()))??;
        drop(runtime::spawn_on(reactor, report(echo(socket, handling))));
    }
    drop(runtime::spawn(report(echo(first, handling))));
    announce(addr)?;
    stop.await;
    if args.stats {
        print_stats()?;
    }
    eprintln!("stopped");
    Ok(())
}

async fn report(echo: impl std::future::Future<Output = io::Result<()>>) {
    if let Err(e) = echo.await {
        eprintln!("echo stopped: {e}");
    }
}
