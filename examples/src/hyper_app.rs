//! The hyper and axum examples' serving code: any hyper service over HTTP/1.1 and HTTP/2 (h2c,
//! or either over TLS with ALPN), through `runtime::compat`, shut down gracefully.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use runtime::compat::{AsyncIo, HyperExecutor, HyperTimer};
use runtime::net::TcpStream;
use runtime::Draining;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// A response body: a fixed one, or the request's streamed back.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// The length of hyper's HTTP/1.1 answer to `GET /`: status line, `content-length`, `date`
/// (always 29 characters), blank line and `Hello, World!`; load generators expect it.
pub const HELLO_RESPONSE_LEN: usize = 17 + 20 + 37 + 2 + 13;

fn full(bytes: &'static [u8]) -> Body {
    Full::new(Bytes::from_static(bytes))
        .map_err(|never| match never {})
        .boxed()
}

/// The hyper example's routes: `GET /` answers `Hello, World!`; `/echo` streams the request
/// body back as it arrives; anything else is a 404.
pub async fn route(req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => Response::new(full(b"Hello, World!")),
        (_, "/echo") => Response::new(req.into_body().boxed()),
        _ => {
            let mut not_found = Response::new(full(b"not found\n"));
            *not_found.status_mut() = StatusCode::NOT_FOUND;
            not_found
        }
    };
    Ok(response)
}

/// A TLS acceptor for the PEM certificate chain at `cert` and the PEM private key at `key`,
/// offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_acceptor(cert: &Path, key: &Path) -> io::Result<TlsAcceptor> {
    let invalid = |what: &Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: {e}", what.display()),
        )
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(cert, &e))?;
    if certs.is_empty() {
        return Err(invalid(cert, &"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| invalid(key, &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves one connection with `service`: over TLS if `tls` is given, HTTP/1.1 or HTTP/2 as the
/// client speaks. When the server begins to drain, the connection finishes the requests in
/// flight and closes (HTTP/1.1 stops keep-alive; HTTP/2 sends GOAWAY).
pub async fn serve_connection<S, B>(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    service: S,
    draining: Draining,
) -> io::Result<()>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + 'static,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    stream.set_nodelay(true)?;
    let io = AsyncIo::new(stream);
    match tls {
        Some(acceptor) => {
            let tls = acceptor.accept(io).await?;
            serve_http(TokioIo::new(tls), service, draining).await
        }
        None => serve_http(TokioIo::new(io), service, draining).await,
    }
}

async fn serve_http<I, S, B>(io: I, service: S, draining: Draining) -> io::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + 'static,
    S::Future: 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(HyperExecutor);
    builder.http1().timer(HyperTimer);
    builder.http2().timer(HyperTimer);
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut drain = pin!(draining.wait());
    let mut asked_to_finish = false;
    poll_fn(|cx| {
        if !asked_to_finish && drain.as_mut().poll(cx).is_ready() {
            asked_to_finish = true;
            conn.as_mut().graceful_shutdown();
        }
        match conn.as_mut().poll(cx) {
            Poll::Ready(res) => Poll::Ready(res.map_err(io::Error::other)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Parses `--tls CERT KEY` out of `args`: what remains, and the acceptor if asked for.
pub fn take_tls_flag(args: Vec<String>) -> Result<(Vec<String>, Option<TlsAcceptor>), String> {
    let mut rest = Vec::with_capacity(args.len());
    let mut tls = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg != "--tls" {
            rest.push(arg);
            continue;
        }
        let (Some(cert), Some(key)) = (it.next(), it.next()) else {
            return Err("--tls needs two values: CERT KEY (PEM files)".into());
        };
        let acceptor =
            tls_acceptor(Path::new(&cert), Path::new(&key)).map_err(|e| format!("--tls: {e}"))?;
        tls = Some(acceptor);
    }
    Ok((rest, tls))
}

/// The command line (without the program name), with the flags that only the owned-buffer
/// examples take refused: `--offload` and `--work-us` exit with status 2.
pub fn cli_args(name: &str) -> Vec<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(flag) = args.iter().find(|a| *a == "--offload" || *a == "--work-us") {
        eprintln!("{name}: {flag} applies to the echo, http and kv examples only");
        std::process::exit(2);
    }
    args
}
