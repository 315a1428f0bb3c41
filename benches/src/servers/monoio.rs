//! monoio, with the ring it is given (its default, or `SINGLE_ISSUER | DEFER_TASKRUN`).

use std::io;

use super::{announce, Handler};

pub(super) fn serve_monoio(handler: Handler, ring: io_uring_06::Builder) -> io::Result<()> {
    use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(256)
        .uring_builder(ring)
        .build()?;
    rt.block_on(async move {
        let listener = monoio::net::TcpListener::bind("127.0.0.1:0")?;
        announce(listener.local_addr()?)?;
        loop {
            let (mut stream, _) = listener.accept().await?;
            monoio::spawn(async move {
                stream.set_nodelay(true)?;
                let mut buf = vec![0u8; 4096];
                let mut pending = Vec::new();
                loop {
                    let (res, b) = stream.read(buf).await;
                    let n = res?;
                    if n == 0 {
                        return io::Result::Ok(());
                    }
                    pending.extend_from_slice(&b[..n]);
                    buf = b;
                    let Some(out) = handler.answer(&mut pending) else {
                        return Ok(());
                    };
                    let (res, _) = stream.write_all(out).await;
                    res?;
                }
            });
        }
    })
}
