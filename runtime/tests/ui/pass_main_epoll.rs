#[runtime::main(backend = "epoll")]
async fn main() -> std::io::Result<()> {
    let info = runtime::running_backend().expect("inside the runtime");
    assert_eq!(info.kind(), runtime::BackendKind::Epoll);
    let listener = runtime::net::TcpListener::bind("127.0.0.1:0")?;
    assert!(listener.local_addr()?.port() > 0);
    Ok(())
}
