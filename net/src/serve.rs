//! `serve`: one `SO_REUSEPORT` listener per reactor, each accepting on its own reactor, and the
//! [`Server`] handle that shuts it down gracefully.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use runtime_core::{reactors, spawn, Source};

use crate::drain::{until, Flag, Live, LiveGuard};
use crate::{TcpListener, TcpStream};

/// How long an acceptor waits after a failed accept (out of fds, out of memory) before trying
/// again, so that a persistent failure does not spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `addr` on every reactor of the runtime, calling `handler` for each on
/// the reactor that accepted it. Returns once every reactor listens; the acceptors run until
/// [`Server::shutdown`] or the end of the runtime.
///
/// Must be called from a reactor thread.
pub async fn serve<S, H, Fut>(addr: SocketAddr, handler: H) -> io::Result<Server<S>>
where
    S: Source,
    H: Fn(TcpStream<S>) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let server = Server::bind(addr).await?;
    server.serve(handler)?;
    Ok(server)
}

/// What a server's shutdown, its acceptors and its connections share.
#[derive(Default)]
struct Shared {
    /// Set when shutdown begins: acceptors stop, handlers may finish early.
    draining: Flag,
    /// Set at the grace deadline: connections still running are dropped.
    cancel: Flag,
    acceptors: Arc<Live>,
    connections: Arc<Live>,
    /// Connections that finished on their own after shutdown began.
    finished: AtomicUsize,
}

/// A server bound on every reactor: [`serve`] starts it, [`shutdown`](Server::shutdown) stops
/// it gracefully.
pub struct Server<S: Source> {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Each reactor's listener, until [`serve`](Server::serve) starts accepting on it.
    listeners: Mutex<Vec<(usize, TcpListener<S>)>>,
}

impl<S: Source> std::fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("connections", &self.shared.connections.count())
            .field("draining", &self.shared.draining.is_set())
            .finish()
    }
}

/// A handle that says when a server begins to shut down, for handlers that can finish early
/// (an HTTP server stops keep-alive and closes after the response in flight).
#[derive(Clone)]
pub struct Draining(Arc<Shared>);

impl std::fmt::Debug for Draining {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Draining")
            .field(&self.is_draining())
            .finish()
    }
}

impl Draining {
    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.0.draining.is_set()
    }

    /// Waits until shutdown begins.
    pub async fn wait(&self) {
        self.0.draining.wait().await
    }
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections that finished on their own after shutdown began (counting from
    /// [`Server::stop_accepting`] when it was called first).
    pub finished: usize,
    /// Connections still running at the deadline, dropped.
    pub cancelled: usize,
}

impl<S: Source> Server<S> {
    /// Binds `addr` on every reactor (one `SO_REUSEPORT` listener each; port 0 picks one port
    /// for all). Nothing is accepted until [`serve`](Server::serve).
    ///
    /// Must be called from a reactor thread.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let here = runtime_core::current_reactor()
            .ok_or_else(runtime_core::not_on_a_reactor)?
            .index();
        let first = TcpListener::<S>::bind_reuseport(addr)?;
        let addr = first.local_addr()?;
        let mut listeners = vec![(here, first)];
        for reactor in reactors() {
            if reactor.index() == here {
                continue;
            }
            let bind = reactor.spawn(async move { TcpListener::<S>::bind_reuseport(addr) });
            let listener = bind
                .await
                .map_err(|e| io::Error::other(format!("reactor {}: {e}", reactor.index())))??;
            listeners.push((reactor.index(), listener));
        }
        Ok(Server {
            addr,
            shared: Arc::default(),
            listeners: Mutex::new(listeners),
        })
    }

    /// The bound address (with the port chosen for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections running now.
    pub fn connections(&self) -> usize {
        self.shared.connections.count()
    }

    /// A handle that says when shutdown begins.
    pub fn draining(&self) -> Draining {
        Draining(self.shared.clone())
    }

    /// Starts accepting on every reactor, calling `handler` for each connection on the reactor
    /// that accepted it. An error if the server already serves or was shut down.
    pub fn serve<H, Fut>(&self, handler: H) -> io::Result<()>
    where
        H: Fn(TcpStream<S>) -> Fut + Send + Sync + Clone + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let listeners = std::mem::take(&mut *self.listeners.lock());
        if listeners.is_empty() {
            return Err(io::Error::other("the server already serves"));
        }
        let all = reactors();
        for (index, listener) in listeners {
            let handler = handler.clone();
            let shared = self.shared.clone();
            // Counted now, so that a shutdown right after this call waits for every acceptor.
            let acceptor = shared.acceptors.enter();
            let start = move || drop(spawn(accept_loop(acceptor, listener, handler, shared)));
            match all.iter().find(|r| r.index() == index) {
                Some(reactor) if !reactor.is_current() => {
                    drop(reactor.spawn(async move { start() }))
                }
                _ => start(),
            }
        }
        Ok(())
    }

    /// Stops accepting and tells handlers that shutdown began ([`draining`](Server::draining));
    /// returns once every listener is closed, so that new connections are refused from then
    /// on. Connections in flight go on.
    pub async fn stop_accepting(&self) {
        self.listeners.lock().clear();
        self.shared.draining.set();
        self.shared.acceptors.until_none().await;
    }

    /// Shuts down gracefully: stops accepting (the listeners close, so new connections are
    /// refused), lets the connections in flight finish for up to `grace`, then drops the rest.
    /// Handlers learn that shutdown began through [`draining`](Server::draining).
    pub async fn shutdown(self, grace: Duration) -> ShutdownReport {
        self.stop_accepting().await;
        let shared = &self.shared;
        let drained = runtime_core::timeout(grace, shared.connections.until_none()).await;
        let cancelled = if drained.is_ok() {
            0
        } else {
            let cancelled = shared.connections.count();
            shared.cancel.set();
            shared.connections.until_none().await;
            cancelled
        };
        ShutdownReport {
            finished: shared.finished.load(Ordering::SeqCst),
            cancelled,
        }
    }
}

/// Accepts until shutdown. `_acceptor` counts this loop as running until the listener stopped
/// listening (parameters drop in reverse order: it must come first).
async fn accept_loop<S, H, Fut>(
    _acceptor: LiveGuard,
    listener: TcpListener<S>,
    handler: H,
    shared: Arc<Shared>,
) where
    S: Source,
    H: Fn(TcpStream<S>) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    loop {
        let Some(accepted) = until(listener.accept(), shared.draining.wait()).await else {
            // Shutdown: refuse new connections before this acceptor counts as gone (the close
            // itself may still be on its way to the kernel).
            let _ = listener.stop_listening().await;
            return;
        };
        match accepted {
            Ok((stream, _)) => {
                let connection = shared.connections.enter();
                let work = handler(stream);
                let shared = shared.clone();
                drop(spawn(async move {
                    let done = until(work, shared.cancel.wait()).await.is_some();
                    if done && shared.draining.is_set() {
                        shared.finished.fetch_add(1, Ordering::SeqCst);
                    }
                    drop(connection);
                }));
            }
            Err(_) => {
                let pause = runtime_core::sleep(ACCEPT_BACKOFF);
                if until(pause, shared.draining.wait()).await.is_none() {
                    let _ = listener.stop_listening().await;
                    return;
                }
            }
        }
    }
}
