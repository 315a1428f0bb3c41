//! `serve`: one `SO_REUSEPORT` listener per reactor, each accepting on its own reactor.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use runtime_core::{reactors, spawn, Source};

use crate::{TcpListener, TcpStream};

/// How long an acceptor waits after a failed accept (out of fds, out of memory) before trying
/// again, so that a persistent failure does not spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `addr` on every reactor of the runtime, calling `handler` for each on
/// the reactor that accepted it. Returns the bound address (with the port chosen for port 0)
/// once every reactor listens; the acceptors run until the runtime stops.
///
/// Must be called from a reactor thread.
pub async fn serve<S, H, Fut>(addr: SocketAddr, handler: H) -> io::Result<SocketAddr>
where
    S: Source,
    H: Fn(TcpStream<S>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let first = TcpListener::<S>::bind_reuseport(addr)?;
    let bound = first.local_addr()?;
    let here = runtime_core::current_reactor().map(|r| r.index());
    for reactor in reactors() {
        if Some(reactor.index()) == here {
            continue;
        }
        let handler = handler.clone();
        let bind = reactor.spawn(async move {
            let listener = TcpListener::<S>::bind_reuseport(bound)?;
            spawn(accept_loop(listener, handler));
            io::Result::Ok(())
        });
        bind.await??;
    }
    spawn(accept_loop(first, handler));
    Ok(bound)
}

async fn accept_loop<S, H, Fut>(listener: TcpListener<S>, handler: H)
where
    S: Source,
    H: Fn(TcpStream<S>) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, _)) => drop(spawn(handler(stream))),
            Err(_) => runtime_core::sleep(ACCEPT_BACKOFF).await,
        }
    }
}
