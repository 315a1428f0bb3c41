//! The echo handler.

use std::io;
use std::sync::Arc;

use runtime::net::{Family, Stream, TcpStream};
use runtime::{BufResult, IoBuf};

use crate::{Handling, Placement};

/// Echoes everything a TCP `stream` sends until it closes (after `handling.work` per read).
pub async fn echo(stream: TcpStream, handling: impl Into<Handling>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    echo_stream(stream, handling).await
}

/// Echoes everything a stream of any family sends until it closes.
pub async fn echo_stream<F: Family>(
    stream: Stream<F>,
    handling: impl Into<Handling>,
) -> io::Result<()> {
    let handling = handling.into();
    let stream = Arc::new(stream);
    let mut buf = vec![0u8; 4096];
    loop {
        let BufResult(res, b) = stream.read(buf).await;
        let n = res?;
        if n == 0 {
            return Ok(());
        }
        buf = match handling.placement {
            Placement::Inline => {
                handling.do_work();
                let BufResult(res, b) = stream.write_all(b.slice(..n)).await;
                res?;
                b.into_inner()
            }
            Placement::Offload => {
                let stream = stream.clone();
                runtime::pool::spawn(async move {
                    handling.do_work();
                    let BufResult(res, b) = stream.write_all(b.slice(..n)).await;
                    res.map(|()| b.into_inner())
                })
                .await??
            }
        };
    }
}
