//! The load client, on plain epoll (mio): open loop at a fixed rate over many connections,
//! closed loop with a pipelining depth, connection churn (`churn.rs`), or UDP datagrams at a
//! fixed rate (`datagrams.rs`).
//!
//! Each request is sent at its scheduled time whether or not earlier replies have arrived, and
//! its latency is measured from that scheduled time, so a stalled server cannot hide its stall
//! by slowing the client down (no coordinated omission).

mod churn;
mod datagrams;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// How requests are offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// At a fixed rate (requests per second, all connections together), whatever the replies.
    Open {
        /// Requests per second.
        rate: u64,
    },
    /// Each connection keeps `depth` requests outstanding (1: ping-pong; more: pipelining).
    Closed {
        /// Requests in flight per connection.
        depth: usize,
    },
    /// Connection churn: each of `connections` slots connects, sends one request, reads the
    /// reply, closes (with a reset, so no port is left in `TIME_WAIT`), and starts over.
    /// Latency runs from the connect to the reply.
    Churn,
    /// UDP datagrams at a fixed rate (all sockets together), each matched to its reply by a
    /// sequence number; `connections` is the number of client sockets (`datagrams.rs`).
    Datagrams {
        /// Datagrams per second.
        rate: u64,
    },
}

/// One load run.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Server address.
    pub addr: SocketAddr,
    /// Connections the requests are spread over.
    pub connections: usize,
    /// Open or closed loop.
    pub mode: Mode,
    /// The bytes of one request.
    pub request: Vec<u8>,
    /// The bytes of one reply (replies are counted by size).
    pub response_len: usize,
    /// Time before measuring starts.
    pub warmup: Duration,
    /// Time measured.
    pub measure: Duration,
    /// Told when the measured window opens and when it closes.
    pub on_window: Option<WindowHook>,
}

/// What a run calls when its measured window opens (`true`) and closes (`false`), from the
/// client's thread: the syscall count is enabled for that window alone.
#[derive(Clone)]
pub struct WindowHook(pub std::sync::Arc<dyn Fn(bool) -> io::Result<()> + Send + Sync>);

impl std::fmt::Debug for WindowHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WindowHook")
    }
}

/// What one run saw.
#[derive(Debug)]
pub struct LoadResult {
    /// Requests completed within the measured window.
    pub completed: u64,
    /// Requests sent within the measured window.
    pub sent: u64,
    /// Latency from scheduled send to full reply, microseconds.
    pub latency_us: Histogram<u64>,
    /// The measured window's real length.
    pub window: Duration,
    /// The client could not send on schedule (it, not the server, was the bottleneck).
    pub client_saturated: bool,
}

/// A run's schedule and what it counted: sends and replies in the measured window, the
/// latencies of those replies, and sends made late.
pub(crate) struct Window {
    measure_from: Instant,
    pub(crate) end: Instant,
    measure: Duration,
    /// An open loop's interval between requests, and when the next one is due.
    schedule: Option<(Duration, Instant)>,
    latency: Histogram<u64>,
    sent: u64,
    completed: u64,
    late: u64,
    hook: Option<WindowHook>,
    opened: bool,
}

impl Window {
    /// Starting now: `spec.warmup`, then `spec.measure` measured; an open loop sends one
    /// request every `interval` from now.
    pub(crate) fn new(spec: &LoadSpec, interval: Option<Duration>) -> io::Result<Self> {
        let start = Instant::now();
        let measure_from = start + spec.warmup;
        Ok(Window {
            measure_from,
            end: measure_from + spec.measure,
            measure: spec.measure,
            schedule: interval.map(|i| (i, start)),
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)
                .map_err(|e| io::Error::other(e.to_string()))?,
            sent: 0,
            completed: 0,
            late: 0,
            hook: spec.on_window.clone(),
            opened: false,
        })
    }

    /// Tells the hook, once, that the measured window has opened by `now`.
    fn reached(&mut self, now: Instant) -> io::Result<()> {
        if !self.opened && now >= self.measure_from {
            self.opened = true;
            if let Some(hook) = &self.hook {
                (hook.0)(true)?;
            }
        }
        Ok(())
    }

    /// The open loop's next request if it is due by `now` (before the end): its scheduled
    /// time, counted as sent at `now`.
    pub(crate) fn due(&mut self, now: Instant) -> io::Result<Option<Instant>> {
        let Some((interval, next)) = self.schedule else {
            return Ok(None);
        };
        if next > now || next >= self.end {
            return Ok(None);
        }
        self.schedule = Some((interval, next + interval));
        self.sent(next, now)?;
        Ok(Some(next))
    }

    /// A request scheduled for `at` went out at `now` (more than a millisecond after: late).
    pub(crate) fn sent(&mut self, at: Instant, now: Instant) -> io::Result<()> {
        self.reached(now)?;
        if now - at > Duration::from_millis(1) {
            self.late += 1;
        }
        if at >= self.measure_from {
            self.sent += 1;
        }
        Ok(())
    }

    /// The reply to the request scheduled for `scheduled` came at `done_at`.
    pub(crate) fn completed(&mut self, scheduled: Instant, done_at: Instant) -> io::Result<()> {
        self.reached(done_at)?;
        if scheduled >= self.measure_from {
            self.completed += 1;
            let us = (done_at - scheduled).as_micros().max(1) as u64;
            self.latency.saturating_record(us);
        }
        Ok(())
    }

    /// The result; `scheduled`: sends kept a schedule, which more than 1% of them over a
    /// millisecond late says the client could not keep (it, not the server, was the limit).
    pub(crate) fn finish(mut self, scheduled: bool) -> io::Result<LoadResult> {
        self.reached(self.end)?;
        if let Some(hook) = &self.hook {
            (hook.0)(false)?;
        }
        Ok(LoadResult {
            completed: self.completed,
            sent: self.sent,
            latency_us: self.latency,
            window: self.measure,
            client_saturated: scheduled && self.late * 100 > self.sent.max(1),
        })
    }
}

struct Conn {
    stream: TcpStream,
    /// Scheduled send times of requests not yet answered.
    outstanding: VecDeque<Instant>,
    /// Bytes queued but not yet accepted by the socket.
    unsent: Vec<u8>,
    /// Reply bytes received towards the current request.
    partial: usize,
}

impl Conn {
    fn flush(&mut self) -> io::Result<()> {
        while !self.unsent.is_empty() {
            match self.stream.write(&self.unsent) {
                Ok(n) => {
                    self.unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn connect_all(addr: SocketAddr, n: usize, poll: &Poll) -> io::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let std_stream = std::net::TcpStream::connect(addr)?;
        std_stream.set_nodelay(true)?;
        std_stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(std_stream);
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        conns.push(Conn {
            stream,
            outstanding: VecDeque::new(),
            unsent: Vec::new(),
            partial: 0,
        });
    }
    Ok(conns)
}

/// Runs the load; errors if a connection fails or the server answers wrongly.
pub fn run_load(cfg: &LoadSpec) -> io::Result<LoadResult> {
    match cfg.mode {
        Mode::Churn => churn::run_churn(cfg),
        Mode::Datagrams { rate } => datagrams::run_datagrams(cfg, rate),
        Mode::Open { rate } => run_connected(cfg, Some(interval(rate)), 0),
        Mode::Closed { depth } => run_connected(cfg, None, depth.max(1)),
    }
}

/// The time between requests at `rate` per second.
pub(crate) fn interval(rate: u64) -> Duration {
    Duration::from_secs_f64(1.0 / rate.max(1) as f64)
}

/// Over connections made once: one request every `interval` (open loop, `depth` 0), or `depth`
/// requests in flight per connection (closed loop).
fn run_connected(
    cfg: &LoadSpec,
    interval: Option<Duration>,
    depth: usize,
) -> io::Result<LoadResult> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut conns = connect_all(cfg.addr, cfg.connections, &poll)?;
    let message = cfg.request.clone();
    let mut scratch = vec![0u8; 64 * 1024];

    // Closed loop: fill every connection's window once, then send one per reply.
    if depth > 0 {
        let now = Instant::now();
        for conn in &mut conns {
            for _ in 0..depth {
                conn.outstanding.push_back(now);
                conn.unsent.extend_from_slice(&message);
            }
            conn.flush()?;
        }
    }
    let mut window = Window::new(cfg, interval)?;
    let end = window.end;
    let mut next_conn = 0usize;

    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        while let Some(at) = window.due(now)? {
            let n_conns = conns.len();
            let conn = &mut conns[next_conn];
            next_conn = (next_conn + 1) % n_conns;
            conn.outstanding.push_back(at);
            conn.unsent.extend_from_slice(&message);
            conn.flush()?;
        }
        // The open loop spins to keep its schedule; the closed loop can wait for replies.
        let wait = if depth == 0 {
            Duration::ZERO
        } else {
            end - now
        };
        poll.poll(&mut events, Some(wait))?;
        for event in events.iter() {
            let conn = &mut conns[event.token().0];
            if event.is_writable() {
                conn.flush()?;
            }
            if !event.is_readable() {
                continue;
            }
            loop {
                let n = match conn.stream.read(&mut scratch) {
                    Ok(0) => {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "server closed",
                        ))
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                };
                conn.partial += n;
                let done_at = Instant::now();
                while conn.partial >= cfg.response_len {
                    conn.partial -= cfg.response_len;
                    let scheduled = conn.outstanding.pop_front().ok_or_else(|| {
                        io::Error::new(io::ErrorKind::InvalidData, "reply without a request")
                    })?;
                    window.completed(scheduled, done_at)?;
                    if depth > 0 && done_at < end {
                        conn.outstanding.push_back(done_at);
                        conn.unsent.extend_from_slice(&message);
                        window.sent(done_at, done_at)?;
                    }
                }
                conn.flush()?;
            }
        }
    }
    // A closed loop has no schedule: its client is never flagged.
    window.finish(depth == 0)
}
