//! A ring of 8 entries under a burst of thousands of operations: the SQ fills (the driver
//! submits early) and the CQ overflows (the kernel holds the overflow until the driver flushes
//! it); no completion is lost or duplicated. Each connection makes enough round trips to take a
//! slot in the ring's file table (where the kernel has direct descriptors), so installs, SQEs
//! naming slots and emptyings all wait in the backlog behind one another.
#![cfg(feature = "uring")]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

mod common;

use runtime::net::{TcpListener, TcpStream};
use runtime::{Backend, BufResult, Builder};

const CLIENTS: usize = 500;
/// Round trips per connection: more than the operations after which a socket takes a slot.
const ROUNDS: usize = 10;

#[test]
fn eight_entry_ring_under_a_burst_loses_nothing() {
    let rt = match Builder::new()
        .backend(Backend::Uring)
        .ring_entries(8)
        .reactors(1)
        .pool_threads(0)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return eprintln!("skipped: io_uring unavailable: {e}"),
    };
    assert_eq!(
        rt.backend_kind(),
        runtime::BackendKind::Uring,
        "this test needs io_uring (is RUNTIME_BACKEND set?)"
    );
    let (replies, used, reason) = rt
        .block_on(runtime::time::timeout(Duration::from_secs(60), async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            runtime::spawn(async move {
                loop {
                    let (s, _) = listener.accept().await.expect("accept");
                    runtime::spawn(async move {
                        loop {
                            let BufResult(res, buf) = s.read(vec![0u8; 64]).await;
                            let n = res.expect("server read");
                            if n == 0 {
                                break;
                            }
                            let BufResult(res, _) = s.write_all(buf[..n].to_vec()).await;
                            res.expect("server write");
                        }
                    });
                }
            });
            let replies = Rc::new(RefCell::new(Vec::new()));
            // Every client is spawned before any runs: the first turn queues them all at once.
            let clients: Vec<_> = (0..CLIENTS)
                .map(|i| {
                    let replies = replies.clone();
                    runtime::spawn(async move {
                        let c = TcpStream::connect(addr).await.expect("connect");
                        for round in 0..ROUNDS {
                            let msg = format!("request {i:04}.{round}").into_bytes();
                            let who = format!("client {i}");
                            let (msg, got) = common::write_and_read_back(&c, msg, 64, &who).await;
                            assert_eq!(got, msg, "client {i} got another's reply");
                        }
                        replies.borrow_mut().push(i);
                    })
                })
                .collect();
            for c in clients {
                c.await.expect("client task");
            }
            let replies = replies.borrow().clone();
            let reason = runtime::running_backend()
                .expect("backend")
                .reason()
                .to_string();
            (
                replies,
                runtime::MetricsSnapshot::sum(&runtime::metrics()),
                reason,
            )
        }))
        .expect("runtime")
        .expect("the burst finished in time");
    // Each client checked that its reply was its own; each finished once.
    assert_eq!(replies.len(), CLIENTS, "every client got exactly one reply");
    // The burst did what it is here for: the SQ filled and the CQ overflowed.
    assert!(used.sq_full > 0, "the SQ never filled: {used:?}");
    assert!(used.cq_overflows > 0, "the CQ never overflowed: {used:?}");
    if reason.contains("direct descriptors (") {
        assert!(
            used.direct_descriptors > 0,
            "no socket took a slot: {used:?}"
        );
    }
}
