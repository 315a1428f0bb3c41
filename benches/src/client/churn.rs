//! Connection churn: a fixed number of slots, each connecting, sending one request, reading the
//! reply and closing, over and over. What it measures is the accept and connection setup and
//! teardown path of the server, which a long-lived-connection workload never touches.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::client::{LoadResult, LoadSpec, Window};

/// One slot's connection in progress.
struct Attempt {
    stream: TcpStream,
    started: Instant,
    sent: usize,
    received: usize,
}

/// Closes with a reset (`SO_LINGER` 0): the client's port is free at once instead of spending
/// a minute in `TIME_WAIT`, which would exhaust the ephemeral ports at these rates.
fn set_reset_on_close(stream: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO))
}

/// `None` for "not yet" (`WouldBlock`, or `NotConnected` while the connect is in progress).
fn pending_ok(res: io::Result<usize>) -> io::Result<Option<usize>> {
    match res {
        Ok(n) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::NotConnected
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn open(spec: &LoadSpec, poll: &Poll, slot: usize) -> io::Result<Attempt> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(spec.addr)?;
    stream.set_nodelay(true)?;
    set_reset_on_close(&stream)?;
    poll.registry().register(
        &mut stream,
        Token(slot),
        Interest::READABLE | Interest::WRITABLE,
    )?;
    Ok(Attempt {
        stream,
        started,
        sent: 0,
        received: 0,
    })
}

/// Runs churn with `spec.connections` slots; errors if a connection fails or the server answers
/// wrongly.
pub(crate) fn run_churn(spec: &LoadSpec) -> io::Result<LoadResult> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut slots = (0..spec.connections)
        .map(|i| open(spec, &poll, i))
        .collect::<io::Result<Vec<_>>>()?;
    let mut scratch = vec![0u8; 64 * 1024];
    let mut window = Window::new(spec, None)?;
    while Instant::now() < window.end {
        poll.poll(&mut events, Some(Duration::from_millis(10)))?;
        for event in events.iter() {
            let slot = event.token().0;
            let a = &mut slots[slot];
            if let Some(e) = a.stream.take_error()? {
                return Err(e);
            }
            while a.sent < spec.request.len() {
                match pending_ok(a.stream.write(&spec.request[a.sent..]))? {
                    Some(n) => a.sent += n,
                    None => break,
                }
            }
            while let Some(n) = pending_ok(a.stream.read(&mut scratch))? {
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed before replying",
                    ));
                }
                a.received += n;
            }
            if a.received > spec.response_len {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "reply too long"));
            }
            if a.received == spec.response_len {
                // Sent at its connect: each request counts as sent when it completes.
                window.sent(a.started, a.started)?;
                window.completed(a.started, Instant::now())?;
                let mut done = std::mem::replace(a, open(spec, &poll, slot)?);
                poll.registry().deregister(&mut done.stream)?;
            }
        }
    }
    window.finish(false)
}
