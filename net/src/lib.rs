//! TCP sockets written once over the [`Source`](runtime_core::Source) of any driver.
//!
//! Nothing here names a backend: `TcpStream<S>` works the same over io_uring and epoll, and the
//! `runtime` facade picks `S`.
#![forbid(unsafe_code)]

mod drain;
mod listener;
mod poll_io;
mod serve;
mod stream;

pub use listener::{Incoming, TcpListener};
pub use poll_io::{PollIo, ReadStream, StreamSource, WriteStream};
pub use serve::{serve, Draining, Server, ShutdownReport};
pub use stream::{OwnedReadHalf, OwnedWriteHalf, TcpStream};

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

/// Runs `f` on each address `addrs` resolves to until one succeeds; the error names the address.
async fn each_addr<T, F, Fut>(addrs: impl ToSocketAddrs, mut f: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for addr in addrs.to_socket_addrs()? {
        match f(addr).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(io::Error::new(e.kind(), format!("{addr}: {e}"))),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing")
    }))
}
