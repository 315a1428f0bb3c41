//! Cross-thread handoff latency per wake strategy, and the inline submit path beside it.
//!
//! Each iteration writes one byte on a connection owned by reactor 0 and times it from just
//! before the write until a blocking peer thread has read the byte. In the handoff cases the
//! write is made from another thread while reactor 0 sleeps in the kernel (checked through
//! `/proc`), so the time is what it takes to wake the owner and have it submit: the article's
//! deadlock, resolved. The inline case writes from reactor 0 itself. Used by `compare` and by
//! the criterion bench `handoff`.

use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use runtime::net::{TcpListener, TcpStream};
use runtime::{Backend, BufResult, Builder, WakeStrategy};

/// The measured cases: name, wake strategy, writer.
pub fn cases() -> Vec<(&'static str, WakeStrategy, Writer)> {
    vec![
        ("inline_owner", WakeStrategy::EventfdIfParked, Writer::Owner),
        ("eventfd_from_pool", WakeStrategy::Eventfd, Writer::Pool),
        (
            "eventfd_if_parked_from_pool",
            WakeStrategy::EventfdIfParked,
            Writer::Pool,
        ),
        (
            "timeout_1ms_from_pool",
            WakeStrategy::Timeout(Duration::from_millis(1)),
            Writer::Pool,
        ),
        (
            "sqpoll_from_pool",
            WakeStrategy::SqPoll {
                idle: Duration::from_millis(10),
            },
            Writer::Pool,
        ),
        (
            "direct_first_from_pool",
            WakeStrategy::DirectFirst,
            Writer::Pool,
        ),
        (
            "eventfd_if_parked_from_reactor",
            WakeStrategy::EventfdIfParked,
            Writer::OtherReactor,
        ),
        (
            "msg_ring_from_reactor",
            WakeStrategy::MsgRing,
            Writer::OtherReactor,
        ),
    ]
}

/// Who writes the byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Reactor 0, the owner: the inline path.
    Owner,
    /// A worker pool thread.
    Pool,
    /// Reactor 1 (the only sender that can use `MSG_RING`).
    OtherReactor,
}

fn thread_state(tid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|i| stat[i + 2..].chars().next())
        .unwrap_or('?')
}

fn wait_until_asleep(tid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while thread_state(tid) != 'S' && Instant::now() < deadline {
        std::thread::yield_now();
    }
}

/// Runs `iters` writes; returns each one's write-to-arrival time.
async fn timed_writes(
    stream: &TcpStream,
    arrivals: &mut mpsc::Receiver<Instant>,
    owner_tid: Option<i32>,
    iters: u64,
) -> Vec<Duration> {
    let mut times = Vec::with_capacity(iters as usize);
    for _ in 0..iters {
        if let Some(tid) = owner_tid {
            wait_until_asleep(tid);
        }
        let start = Instant::now();
        let BufResult(res, _) = stream.write(b"x".as_slice()).await;
        res.expect("write");
        let arrived = arrivals.recv().expect("peer");
        times.push(arrived.saturating_duration_since(start));
    }
    times
}

/// Starts a runtime whose reactor 0 owns one connection, and returns a function that runs
/// `iters` timed writes from `writer` and returns their times.
pub fn start(wake: WakeStrategy, writer: Writer) -> impl FnMut(u64) -> Vec<Duration> {
    let (cmd_tx, cmd_rx) = mpsc::channel::<u64>();
    let (res_tx, res_rx) = mpsc::channel::<Vec<Duration>>();
    std::thread::spawn(move || {
        let rt = Builder::new()
            .backend(Backend::Uring)
            .reactors(2)
            .pool_threads(1)
            .wake(wake)
            .build()
            .expect("io_uring runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let (arrive_tx, mut arrive_rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut peer = std::net::TcpStream::connect(addr).expect("connect");
                let mut byte = [0u8; 1];
                while peer.read_exact(&mut byte).is_ok() {
                    if arrive_tx.send(Instant::now()).is_err() {
                        return;
                    }
                }
            });
            let (stream, _) = listener.accept().await.expect("accept");
            stream.set_nodelay(true).expect("nodelay");
            // SAFETY: gettid has no preconditions.
            let owner_tid = unsafe { libc::gettid() };
            let work = async move {
                while let Ok(iters) = cmd_rx.recv() {
                    let owner = (writer != Writer::Owner).then_some(owner_tid);
                    let took = timed_writes(&stream, &mut arrive_rx, owner, iters).await;
                    if res_tx.send(took).is_err() {
                        break;
                    }
                }
            };
            match writer {
                Writer::Owner => work.await,
                Writer::Pool => runtime::pool::spawn(work).await.expect("pool"),
                Writer::OtherReactor => runtime::spawn_on(1, work).await.expect("reactor 1"),
            }
        })
        .expect("runtime");
    });
    move |iters| {
        cmd_tx.send(iters).expect("runtime thread");
        res_rx.recv().expect("runtime thread")
    }
}
