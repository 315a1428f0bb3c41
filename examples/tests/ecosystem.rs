//! The hyper and axum examples' code on both backends, served to real clients: curl over
//! HTTP/1.1, HTTP/2 by prior knowledge and TLS (ALPN), and a hyper client that itself runs on
//! this runtime through `runtime::compat`.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use runtime::compat::{AsyncIo, HyperExecutor, HyperTimer};
use runtime::net::TcpStream;
use runtime::{Backend, Builder, ShutdownReport};
use tokio_rustls::TlsAcceptor;

/// Which example's service to serve.
#[derive(Clone, Copy)]
enum App {
    Hyper,
    Axum,
}

/// A server running on its own runtime thread until dropped.
struct Running {
    addr: SocketAddr,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<ShutdownReport>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let report = t.join().expect("server thread");
            if !std::thread::panicking() {
                assert_eq!(report.cancelled, 0, "connections left running at shutdown");
            }
        }
    }
}

fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Epoll];
    if Builder::new().backend(Backend::Uring).build().is_ok() {
        v.push(Backend::Uring);
    } else {
        eprintln!("io_uring refused by this kernel: only epoll is tested");
    }
    v
}

fn start(backend: Backend, app: App, tls: Option<TlsAcceptor>) -> Running {
    let (ready, addr) = mpsc::channel();
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        Builder::new()
            .backend(backend)
            .reactors(2)
            .pool_threads(1)
            .block_on(async move {
                assert_on(backend);
                let server = runtime::Server::bind("127.0.0.1:0".parse().expect("addr"))
                    .await
                    .expect("bind");
                let draining = server.draining();
                let router = examples::axum_app::router();
                server
                    .serve(move |stream| {
                        let (tls, draining) = (tls.clone(), draining.clone());
                        let router = router.clone();
                        async move {
                            let res = match app {
                                App::Hyper => {
                                    let service = service_fn(examples::hyper_app::route);
                                    examples::hyper_app::serve_connection(
                                        stream, tls, service, draining,
                                    )
                                    .await
                                }
                                App::Axum => {
                                    let service = TowerToHyperService::new(router);
                                    examples::hyper_app::serve_connection(
                                        stream, tls, service, draining,
                                    )
                                    .await
                                }
                            };
                            if let Err(e) = res {
                                eprintln!("connection: {e}");
                            }
                        }
                    })
                    .expect("serve");
                ready.send(server.local_addr()).expect("ready");
                let _ = runtime::pool::spawn_blocking(move || stopped.recv()).await;
                server.shutdown(Duration::from_secs(10)).await
            })
    });
    let addr = addr
        .recv_timeout(Duration::from_secs(30))
        .expect("server started");
    Running {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    }
}

/// Fails unless this runtime runs on `backend` (`RUNTIME_BACKEND` must not move the test).
fn assert_on(backend: Backend) {
    let info = runtime::running_backend().expect("in a runtime");
    assert_eq!(Backend::from(info.kind()), backend, "runs on {info}");
}

/// Runs curl with `args` (bounded to 30 s); returns its stdout.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl must be installed (Debian package curl) to run these tests");
    assert!(
        out.status.success(),
        "curl {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A PEM certificate and key for `localhost` in a fresh directory: (cert path, key path).
fn certificate(dir: &std::path::Path) -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    std::fs::create_dir_all(dir).expect("dir");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write key");
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("runtime-ecosystem-{name}-{}", std::process::id()))
}

#[test]
fn hyper_example_serves_curl_over_http1_h2c_and_tls() {
    let dir = temp_dir("hyper");
    let (cert, key) = certificate(&dir);
    let body: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let body_path = dir.join("body.bin");
    std::fs::File::create(&body_path)
        .and_then(|mut f| f.write_all(&body))
        .expect("body file");
    let body_arg = format!("@{}", body_path.display());
    for backend in backends() {
        let server = start(backend, App::Hyper, None);
        let url = format!("http://{}/", server.addr);
        let echo = format!("http://{}/echo", server.addr);
        assert_eq!(
            curl(&["--http1.1", "-w", " %{http_version}", &url]),
            "Hello, World! 1.1",
            "{backend:?}"
        );
        assert_eq!(
            curl(&["--http2-prior-knowledge", "-w", " %{http_version}", &url]),
            "Hello, World! 2",
            "{backend:?}"
        );
        for version in ["--http1.1", "--http2-prior-knowledge"] {
            let out = Command::new("curl")
                .args(["--silent", "--show-error", "--max-time", "30", version])
                .args(["--data-binary", &body_arg, &echo])
                .output()
                .expect("curl");
            assert!(out.status.success(), "{backend:?} {version}: echo failed");
            assert!(
                out.stdout == body,
                "{backend:?} {version}: echoed body differs"
            );
        }
        assert!(curl(&["-w", "%{http_code}", &format!("{url}nothing")]).ends_with("404"));
        drop(server);

        let acceptor =
            examples::hyper_app::tls_acceptor(cert.as_ref(), key.as_ref()).expect("acceptor");
        let server = start(backend, App::Hyper, Some(acceptor));
        let url = format!("https://localhost:{}/", server.addr.port());
        let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
        assert_eq!(
            curl(&["-k", "--resolve", &resolve, "-w", " %{http_version}", &url]),
            "Hello, World! 2",
            "{backend:?}: ALPN should pick h2"
        );
        assert_eq!(
            curl(&[
                "-k",
                "--http1.1",
                "--resolve",
                &resolve,
                "-w",
                " %{http_version}",
                &url
            ]),
            "Hello, World! 1.1",
            "{backend:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn axum_example_serves_json_and_path_parameters() {
    for backend in backends() {
        let server = start(backend, App::Axum, None);
        let base = format!("http://{}", server.addr);
        assert_eq!(curl(&[&format!("{base}/")]), "Hello, World!");
        assert_eq!(
            curl(&["--http2-prior-knowledge", &format!("{base}/users/42")]),
            r#"{"id":42,"name":"user-42"}"#,
            "{backend:?}"
        );
        assert_eq!(
            curl(&[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("{base}/users/abc")
            ]),
            "400",
            "{backend:?}: a bad path parameter is a client error"
        );
    }
}

/// A hyper client over `AsyncIo` on this runtime, HTTP/1.1 then HTTP/2, against the hyper
/// example: `GET /` and a 256 KiB `POST /echo`.
#[test]
fn a_hyper_client_on_this_runtime_talks_to_the_example() {
    for backend in backends() {
        let server = start(backend, App::Hyper, None);
        let addr = server.addr;
        Builder::new().backend(backend).block_on(async move {
            assert_on(backend);
            let body: Vec<u8> = (0..256 * 1024).map(|i| (i % 241) as u8).collect();

            let io = TokioIo::new(AsyncIo::new(TcpStream::connect(addr).await.expect("c")));
            let (mut h1, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("http1 handshake");
            runtime::spawn(conn);
            let res = h1
                .send_request(
                    Request::get("/")
                        .body(Full::new(Bytes::new()))
                        .expect("req"),
                )
                .await
                .expect("GET /");
            let got = res.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(&got[..], b"Hello, World!");
            let req = Request::post("/echo")
                .body(Full::new(Bytes::from(body.clone())))
                .expect("req");
            let res = h1.send_request(req).await.expect("POST /echo");
            let got = res.into_body().collect().await.expect("body").to_bytes();
            assert!(got == body, "{backend:?} http1: echoed body differs");

            let io = TokioIo::new(AsyncIo::new(TcpStream::connect(addr).await.expect("c")));
            let (mut h2, conn) = hyper::client::conn::http2::Builder::new(HyperExecutor)
                .timer(HyperTimer)
                .handshake(io)
                .await
                .expect("http2 handshake");
            runtime::spawn(conn);
            let req = Request::post(format!("http://{addr}/echo"))
                .body(Full::new(Bytes::from(body.clone())))
                .expect("req");
            let res = h2.send_request(req).await.expect("h2 POST /echo");
            assert_eq!(res.version(), hyper::Version::HTTP_2);
            let got = res.into_body().collect().await.expect("body").to_bytes();
            assert!(got == body, "{backend:?} http2: echoed body differs");
        });
    }
}

/// The benchmark harness counts response bytes: hyper's answer to `GET /` has the documented
/// length, and pipelined requests get one answer each.
#[test]
fn hypers_answer_has_the_length_the_harness_expects() {
    use std::io::Read;
    for backend in backends() {
        let server = start(backend, App::Hyper, None);
        let mut s = std::net::TcpStream::connect(server.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let request = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
        s.write_all(&request.repeat(3)).expect("send");
        let mut got = vec![0u8; 3 * examples::hyper_app::HELLO_RESPONSE_LEN];
        s.read_exact(&mut got).expect("three answers");
        let text = String::from_utf8_lossy(&got);
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
        assert!(text.ends_with("Hello, World!"), "{text}");
    }
}

/// h2load (nghttp2's load generator) over h2c: every request of several connections with many
/// streams each succeeds, on both backends.
#[test]
fn hyper_example_serves_h2load_over_h2c() {
    for backend in backends() {
        let server = start(backend, App::Hyper, None);
        let out = Command::new("h2load")
            .args(["-n", "4000", "-c", "8", "-m", "16", "-t", "1"])
            .arg(format!("http://{}/", server.addr))
            .output()
            .expect("h2load must be installed (Debian package nghttp2-client) to run these tests");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{backend:?}: h2load failed: {text}");
        assert!(
            text.contains("4000 succeeded, 0 failed"),
            "{backend:?}: not every request succeeded:\n{text}"
        );
        assert!(
            text.contains("h2c"),
            "{backend:?}: h2load did not speak h2c:\n{text}"
        );
    }
}
