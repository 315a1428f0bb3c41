//! The floor: a hand-written single-threaded edge-triggered epoll loop (mio).

use std::io::{self, Read, Write};

use super::{announce, Handler};

/// One connection of the raw loop: what it has read and not answered, and what it could not
/// write yet.
struct RawConn {
    stream: mio::net::TcpStream,
    pending: Vec<u8>,
    unsent: Vec<u8>,
}

pub(super) fn serve_raw_epoll(handler: Handler) -> io::Result<()> {
    use mio::{Events, Interest, Poll, Token};
    const LISTENER: Token = Token(usize::MAX);
    let mut poll = Poll::new()?;
    let mut listener = mio::net::TcpListener::bind("127.0.0.1:0".parse().expect("addr"))?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    announce(listener.local_addr()?)?;
    let mut conns = slab::Slab::<RawConn>::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 4096];
    loop {
        poll.poll(&mut events, None)?;
        for event in events.iter() {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    stream.set_nodelay(true)?;
                    let entry = conns.vacant_entry();
                    let token = Token(entry.key());
                    poll.registry().register(
                        &mut stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert(RawConn {
                        stream,
                        pending: Vec::new(),
                        unsent: Vec::new(),
                    });
                }
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if raw_turn(conn, handler, &mut buf).is_err() {
                let mut conn = conns.remove(key);
                let _ = poll.registry().deregister(&mut conn.stream);
            }
        }
    }
}

/// Answers each read as it comes (as the runtimes' handlers do: one read, one reply), writing
/// what it owes before it reads again, so a peer that does not read holds the reading back;
/// `Err` closes the connection. Edge-triggered: returns only at `WouldBlock`, and a writable
/// event resumes the reading that a full socket buffer stopped.
fn raw_turn(conn: &mut RawConn, handler: Handler, buf: &mut [u8]) -> io::Result<()> {
    loop {
        while !conn.unsent.is_empty() {
            match conn.stream.write(&conn.unsent) {
                Ok(n) => drop(conn.unsent.drain(..n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        match conn.stream.read(buf) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                conn.pending.extend_from_slice(&buf[..n]);
                let out = handler
                    .answer(&mut conn.pending)
                    .ok_or(io::ErrorKind::ConnectionAborted)?;
                conn.unsent.extend_from_slice(&out);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
