//! The loop of a request/response protocol server: read, answer every whole request in one
//! write (pipelining), repeat; the answering runs inline or on the pool.

use std::io;
use std::sync::Arc;

use runtime::net::TcpStream;
use runtime::BufResult;

use crate::{Handling, Placement};

/// Answers the whole requests at the start of a buffer (removing them): the replies, and whether
/// the connection must close after them.
pub trait Respond: Send + Sync + 'static {
    /// See the trait.
    fn respond(&self, pending: &mut Vec<u8>) -> (Vec<u8>, bool);
}

/// Serves `protocol` on `stream` (after `handling.work` per read) until the client closes or the protocol says to close.
pub async fn serve<P: Respond>(
    stream: TcpStream,
    protocol: Arc<P>,
    handling: Handling,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let stream = Arc::new(stream);
    let mut pending = Vec::with_capacity(4096);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let BufResult(res, b) = stream.read(buf).await;
        let n = res?;
        if n == 0 {
            return Ok(());
        }
        pending.extend_from_slice(&b[..n]);
        buf = b;
        let answer = {
            let (stream, protocol) = (stream.clone(), protocol.clone());
            async move {
                handling.do_work();
                let (out, close) = protocol.respond(&mut pending);
                if !out.is_empty() {
                    let BufResult(res, _) = stream.write_all(out).await;
                    res?;
                }
                io::Result::Ok((pending, close))
            }
        };
        let (rest, close) = match handling.placement {
            Placement::Inline => answer.await?,
            Placement::Offload => runtime::pool::spawn(answer).await??,
        };
        if close {
            return Ok(());
        }
        pending = rest;
    }
}

/// A deterministic xorshift generator for the parsers' property tests.
#[cfg(test)]
pub(crate) struct Rng(pub(crate) u64);

#[cfg(test)]
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
