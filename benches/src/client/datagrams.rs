//! The UDP load client: datagrams at a fixed rate over several client sockets, each carrying
//! its sequence number, so that a reply is matched to its scheduled send whatever the order, and
//! a datagram lost on the way is counted instead of stalling the run.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

use crate::client::{LoadResult, LoadSpec, Window};

struct Client {
    socket: UdpSocket,
    /// Datagrams the socket's buffer had no room for yet.
    unsent: VecDeque<Vec<u8>>,
}

impl Client {
    fn flush(&mut self) -> io::Result<()> {
        while let Some(datagram) = self.unsent.front() {
            match self.socket.send(datagram) {
                Ok(_) => drop(self.unsent.pop_front()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn connect_all(addr: SocketAddr, n: usize, poll: &Poll) -> io::Result<Vec<Client>> {
    (0..n)
        .map(|i| {
            let mut socket = UdpSocket::bind("127.0.0.1:0".parse().expect("addr"))?;
            socket.connect(addr)?;
            poll.registry().register(
                &mut socket,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(Client {
                socket,
                unsent: VecDeque::new(),
            })
        })
        .collect()
}

/// Sends `cfg.request` (its first 8 bytes replaced by a sequence number) `rate` times a second,
/// round robin over `cfg.connections` sockets; a reply is the same datagram back.
pub fn run_datagrams(cfg: &LoadSpec, rate: u64) -> io::Result<LoadResult> {
    if cfg.request.len() < 8 || cfg.response_len != cfg.request.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "UDP echo requests carry an 8-byte sequence number and come back whole",
        ));
    }
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut clients = connect_all(cfg.addr, cfg.connections, &poll)?;
    let mut scheduled: Vec<Instant> = Vec::new();
    let mut answered: Vec<bool> = Vec::new();
    let mut scratch = vec![0u8; 65_536];

    let mut window = Window::new(cfg, Some(super::interval(rate)))?;
    let end = window.end;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        while let Some(at) = window.due(now)? {
            let seq = scheduled.len();
            scheduled.push(at);
            answered.push(false);
            let mut datagram = cfg.request.clone();
            datagram[..8].copy_from_slice(&(seq as u64).to_le_bytes());
            let client = &mut clients[seq % cfg.connections];
            client.unsent.push_back(datagram);
            client.flush()?;
        }
        poll.poll(&mut events, Some(Duration::ZERO))?;
        for event in events.iter() {
            let client = &mut clients[event.token().0];
            if event.is_writable() {
                client.flush()?;
            }
            if !event.is_readable() {
                continue;
            }
            loop {
                let n = match client.socket.recv(&mut scratch) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                };
                let done_at = Instant::now();
                let seq = (n == cfg.response_len)
                    .then(|| u64::from_le_bytes(scratch[..8].try_into().expect("8 bytes")))
                    .map(|s| s as usize)
                    .filter(|&s| s < scheduled.len() && !answered[s])
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "a reply matching no request")
                    })?;
                answered[seq] = true;
                window.completed(scheduled[seq], done_at)?;
            }
        }
    }
    window.finish(true)
}
