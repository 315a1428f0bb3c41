//! Handlers shared by the example servers and the benchmark harness, so that what is measured
//! is exactly what the examples run.

use std::io;

use runtime::net::TcpStream;
use runtime::{BufResult, IoBuf};

/// Echoes everything `stream` sends until it closes.
pub async fn echo(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 4096];
    loop {
        let BufResult(res, b) = stream.read(buf).await;
        let n = res?;
        if n == 0 {
            return Ok(());
        }
        let BufResult(res, b) = stream.write_all(b.slice(..n)).await;
        res?;
        buf = b.into_inner();
    }
}
