#[runtime::main(backend = "epoll")]
async fn main() -> std::io::Result<()> {
    let info = runtime::backend().expect("inside the runtime");
    assert_eq!(info.backend(), runtime::Backend::Epoll);
    let listener = runtime::net::TcpListener::bind("127.0.0.1:0")?;
    assert!(listener.local_addr()?.port() > 0);
    Ok(())
}
