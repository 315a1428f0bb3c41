//! The io_uring fast paths, switched off one at a time as a kernel without them would have them
//! off, and all on: every setup serves TCP and UDP round trips and says in its reason what it
//! runs with. A ring's registered fd is given back when the runtime ends. Streams read through
//! receive bundles get every byte, in order.

mod common;

use std::time::Duration;

use runtime::net::{TcpListener, TcpStream, UdpSocket};
use runtime::{Backend, BufResult, Builder, MetricsSnapshot};

/// A TCP and a UDP round trip, within 10 s.
async fn round_trips() {
    runtime::time::timeout(Duration::from_secs(10), async {
        let (client, server) = common::pair().await;
        let echo = runtime::spawn(common::echo(server));
        let BufResult(res, _) = client.write_all(b"ping".to_vec()).await;
        res.expect("write");
        let BufResult(res, buf) = client.read(vec![0u8; 4]).await;
        assert_eq!(&buf[..res.expect("read")], b"ping");
        drop(client);
        echo.await.expect("echo task");

        let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let to = b.local_addr().expect("addr");
        let BufResult(res, _) = a.send_to(b"datagram".to_vec(), to).await;
        res.expect("send_to");
        let BufResult(res, buf) = b.recv_from(Vec::with_capacity(64)).await;
        let (n, from) = res.expect("recv_from");
        assert_eq!(
            (&buf[..n], from),
            (&b"datagram"[..], a.local_addr().unwrap())
        );
    })
    .await
    .expect("round trips within 10 s");
}

/// The reason the runtime `builder` makes gives, after serving round trips on it.
fn reason(builder: Builder) -> String {
    builder.reactors(1).pool_threads(1).block_on(async {
        common::assert_backend(Backend::Uring);
        round_trips().await;
        runtime::running_backend()
            .expect("backend")
            .reason()
            .to_string()
    })
}

/// `builder` with the fast path `path` switched on or off.
fn switched(builder: &Builder, path: &str, on: bool) -> Builder {
    builder
        .clone()
        .uring_fast_path(path, on)
        .expect("a known path")
}

fn uring() -> Option<Builder> {
    match common::backends().contains(&Backend::Uring) {
        true => Some(Builder::new().backend(Backend::Uring)),
        false => None,
    }
}

#[test]
fn each_fast_path_switched_off_still_serves_and_says_so() {
    let Some(uring) = uring() else { return };
    let all = reason(uring.clone());
    eprintln!("all on: {all}");
    // Where the kernel refuses one, the reason says so too: it names the path either way.
    assert!(all.contains("NO_SQARRAY"), "{all}");
    assert!(all.contains("ring fd"), "{all}");

    let no_sqarray = reason(uring.clone().no_sqarray(false));
    assert!(!no_sqarray.contains("NO_SQARRAY"), "{no_sqarray}");
    assert!(no_sqarray.contains("ring fd"), "{no_sqarray}");

    let by_fd = reason(uring.clone().registered_ring_fd(false));
    let by_name = reason(
        uring
            .clone()
            .uring_fast_path("registered-ring-fd", false)
            .expect("a known path"),
    );
    assert_eq!(by_fd, by_name, "the switch by name is the same switch");
    assert!(!by_fd.contains("ring fd"), "{by_fd}");
    assert!(by_fd.contains("NO_SQARRAY"), "{by_fd}");

    let oldest = reason(
        uring
            .no_sqarray(false)
            .registered_ring_fd(false)
            .multishot_receive(false),
    );
    eprintln!("all off: {oldest}");
    assert!(
        !oldest.contains("NO_SQARRAY") && !oldest.contains("ring fd"),
        "{oldest}"
    );
}

/// A thread may register at most 16 rings at once: a runtime that did not unregister its ring
/// when it ended would leave the seventeenth runtime on the same thread entering by its fd.
#[test]
fn a_ended_runtime_gives_its_registered_ring_fd_back() {
    let Some(uring) = uring() else { return };
    let first = reason(uring.clone());
    if !first.contains("registered ring fd") {
        return eprintln!("skipped: the kernel does not register ring fds: {first}");
    }
    for i in 0..24 {
        let again = reason(uring.clone());
        assert!(again.contains("registered ring fd"), "runtime {i}: {again}");
    }
}

/// Four connections stream 2 MiB each in 256 KiB writes at once, and their readers read in
/// uneven sizes, so buffers are given back out of order and each socket holds several when its
/// receive runs: every byte arrives, in order. Each writer scribbles over its buffer as soon as
/// the write returns it, which the peer must never see.
fn stream_concurrently(builder: Builder) -> (String, MetricsSnapshot) {
    const STREAMS: usize = 4;
    const BYTES: usize = 2 << 20;
    common::counted(builder, || async {
        let mut tasks = Vec::new();
        for stream in 0..STREAMS {
            let (client, server) = common::pair().await;
            tasks.push(runtime::spawn(async move {
                let data: Vec<u8> = (0..BYTES).map(|i| common::stream_byte(stream, i)).collect();
                for chunk in data.chunks(256 << 10) {
                    let BufResult(res, mut buf) = client.write_all(chunk.to_vec()).await;
                    res.expect("write");
                    buf.fill(0xEE);
                }
                drop(client);
            }));
            tasks.push(runtime::spawn(read_and_check(server, stream, BYTES)));
        }
        for task in tasks {
            task.await.expect("task");
        }
    })
}

/// Reads `stream`'s `len` bytes in sizes that change from read to read, checking each.
async fn read_and_check(s: TcpStream, stream: usize, len: usize) {
    let mut at = 0;
    let mut buf = Vec::new();
    let mut read = 0;
    while at < len {
        read += 1;
        buf.resize(1 + (read * 7919) % 20_000, 0);
        let BufResult(res, b) = s.read(buf).await;
        let n = res.expect("read");
        assert!(n > 0, "stream {stream} ended at {at} of {len}");
        for (k, &byte) in b[..n].iter().enumerate() {
            assert_eq!(
                byte,
                common::stream_byte(stream, at + k),
                "stream {stream}, byte {}",
                at + k
            );
        }
        at += n;
        buf = b;
    }
    let BufResult(res, _) = s.read(vec![0u8; 16]).await;
    assert_eq!(res.expect("end"), 0, "stream {stream}: bytes past the end");
}

/// Streams with the opt-in fast path `path` on, then with the defaults: on, the reason says
/// `granted` and `taken` counts the path being taken; by default, neither. Returns the builder
/// with the path on, or `None` where the kernel refused it (the reason says "no {granted}").
fn check_opt_in(path: &str, granted: &str, taken: fn(&MetricsSnapshot) -> u64) -> Option<Builder> {
    let uring = uring()?;
    let on = switched(&uring, path, true);
    let (reason, counted) = stream_concurrently(on.clone());
    if reason.contains(&format!("no {granted}")) {
        eprintln!("skipped: {reason}");
        return None;
    }
    assert!(reason.contains(granted), "{reason}");
    assert!(taken(&counted) > 0, "{path} on, never taken: {counted:?}");

    let (reason, counted) = stream_concurrently(uring);
    assert!(!reason.contains(granted), "{reason}");
    assert_eq!(taken(&counted), 0, "{path} is off by default: {counted:?}");
    Some(on)
}

#[test]
fn streams_read_through_receive_bundles_get_every_byte_in_order() {
    check_opt_in("receive-bundle", "receive bundles", |m| m.receive_bundles);
}

/// 500 distinct small messages echoed one at a time, each reply checked.
fn ping_pong(builder: Builder) {
    builder.reactors(1).pool_threads(1).block_on(async {
        runtime::time::timeout(Duration::from_secs(30), async {
            let (client, server) = common::pair().await;
            let echo = runtime::spawn(common::echo(server));
            for i in 0..500usize {
                let message: Vec<u8> = (0..1 + i % 97).map(|k| common::stream_byte(i, k)).collect();
                let (message, got) =
                    common::write_and_read_back(&client, message, 256, "the echo").await;
                assert_eq!(got, message, "reply {i}");
            }
            drop(client);
            echo.await.expect("echo task");
        })
        .await
        .expect("ping-pong within 30 s");
    });
}

#[test]
fn streams_read_through_shared_incremental_buffers_get_every_byte_in_order() {
    let taken = |m: &MetricsSnapshot| m.shared_buffer_receives;
    if let Some(on) = check_opt_in("incremental-buffers", "incremental buffers", taken) {
        // Each small message read before the next arrives: a buffer whose every part was
        // read, but which the kernel still fills, must not be handed back to it.
        ping_pong(on);
    }
}

#[test]
fn large_writes_go_zero_copy_and_arrive_whole() {
    check_opt_in("zero-copy-send", "zero-copy sends", |m| m.zero_copy_sends);
}

/// A zero-copy write dropped while the kernel still holds its buffer (the peer reads nothing
/// and its receive buffer is tiny, so the bytes wait in the sender's queue): the write has not
/// returned, and once dropped its buffer stays the kernel's until the notification, so memory
/// the program allocates and scribbles on meanwhile never reaches the peer.
#[test]
fn a_zero_copy_write_dropped_in_flight_keeps_its_buffer_until_the_notification() {
    const CHUNK: usize = 64 << 10;
    let Some(uring) = uring() else { return };
    let builder = switched(&uring, "zero-copy-send", true);
    builder.reactors(1).pool_threads(1).block_on(async {
        if !runtime::running_backend()
            .expect("backend")
            .reason()
            .contains("zero-copy sends from")
        {
            return eprintln!("skipped: no zero-copy sends here");
        }
        runtime::time::timeout(Duration::from_secs(30), async {
            let (client, server) = common::pair().await;
            let rcvbuf = socket2::SockRef::from(&server).set_recv_buffer_size(4096);
            rcvbuf.expect("SO_RCVBUF");
            let before = common::totals();
            let chunk: Vec<u8> = (0..CHUNK).map(|i| common::stream_byte(0, i)).collect();
            let mut write = Box::pin(client.write_all(chunk));
            for _ in 0..3 {
                let polled = common::poll_once(write.as_mut()).await;
                assert!(
                    polled.is_none(),
                    "the write returned while the kernel still held its buffer"
                );
                runtime::yield_now().await;
            }
            drop(write);
            // Memory freed too early (when the send's result comes, before its notification)
            // would be handed out and scribbled on here.
            let (at, scribbled) =
                common::scribble_and_read_what_arrived(client, &server, 0, CHUNK).await;
            let counted = common::totals().since(&before);
            assert_eq!(counted.zero_copy_sends, 1, "{counted:?}");
            assert!(
                0 < at && at <= CHUNK,
                "the write sent {at} bytes before its drop"
            );
            drop(scribbled);
        })
        .await
        .expect("within 30 s");
    });
}

/// [`common::echoes_at_once`] by owned reads and writes.
fn echoes_at_once(builder: Builder) -> (String, MetricsSnapshot) {
    common::echoes_at_once(builder, common::echo, common::owned_round_trips)
}

/// Late receives (on by default): under the load of many connections at once, reads become
/// one-shot receives at the end of busy turns, and every reply still comes back whole and in
/// order, through the switches between multishot and one-shot receives; switched off, no read
/// is late.
#[test]
fn under_load_reads_receive_late_and_every_reply_comes_back_whole() {
    let Some(uring) = uring() else { return };
    let (reason, counted) = echoes_at_once(uring.clone());
    if !reason.contains("late receives under load") {
        return eprintln!("skipped: no multishot receives here: {reason}");
    }
    eprintln!("late receives on: {counted}");
    assert!(counted.late_receives > 0, "no read was late: {counted:?}");

    let off = switched(&uring, "late-receive", false);
    let (reason, counted) = echoes_at_once(off);
    assert!(!reason.contains("late receives"), "{reason}");
    assert_eq!(counted.late_receives, 0, "{counted:?}");
}

/// Direct descriptors (on by default): three waves of 64 connections echo at once on one
/// reactor, each socket busy enough to get a slot in the ring's file table, and each wave
/// dropped before the next, whose sockets take the slots it emptied. Every reply is the
/// connection's own (a slot naming another socket would send its bytes to that socket's peer),
/// and every server sees its client's end (a slot left holding a dropped socket keeps it open).
/// Switched off, no SQE names a slot, and the same waves pass.
#[test]
fn sockets_named_by_slot_reach_only_their_own_peer_and_close_when_dropped() {
    let Some(uring) = uring() else { return };
    let waves = |builder: Builder| {
        common::counted(builder, || async {
            for wave in 0..3 {
                common::echo_wave(wave, common::echo, common::owned_round_trips).await;
            }
        })
    };
    let (reason, counted) = waves(uring.clone());
    if !reason.contains("direct descriptors (") {
        return eprintln!("skipped: no registered file table here: {reason}");
    }
    eprintln!("direct descriptors on: {counted}");
    // 128 sockets a wave, each with 20 reads and 20 writes or more.
    assert!(
        counted.direct_descriptors >= 3 * 128,
        "sockets given a slot: {counted:?}"
    );

    let off = switched(&uring, "direct-descriptors", false);
    let (reason, counted) = waves(off);
    assert!(!reason.contains("direct descriptors"), "{reason}");
    assert_eq!(counted.direct_descriptors, 0, "{counted:?}");
}

/// A slot names a socket only in its own reactor's table. Two reactors each give a slot to
/// sockets of their own (so each table's first slots are taken), then reactor 1 echoes through
/// a socket reactor 0 owns: its operations go to reactor 0 by fd (handed off, or direct), and
/// its bytes reach its own peer, not whichever socket holds that slot number on reactor 1.
#[test]
fn a_socket_used_from_another_reactor_is_never_named_by_that_reactors_slot() {
    let Some(uring) = uring() else { return };
    const ROUNDS: usize = 20;
    let messages = |id: usize| -> Vec<Vec<u8>> {
        (0..ROUNDS)
            .map(|r| {
                (0..40)
                    .map(|k| common::stream_byte(id * ROUNDS + r, k))
                    .collect()
            })
            .collect()
    };
    let reason = uring.reactors(2).pool_threads(1).block_on(async move {
        runtime::time::timeout(Duration::from_secs(30), async move {
            // A pair owned by each reactor, busy enough for slots there.
            let mut pairs = Vec::new();
            for reactor in 0..2 {
                let pair = runtime::spawn_on(reactor, async move {
                    let (client, server) = common::pair().await;
                    let echo = runtime::spawn(common::echo(server));
                    for (round, message) in messages(reactor).into_iter().enumerate() {
                        let (sent, got) =
                            common::write_and_read_back(&client, message, 64, "warm-up").await;
                        assert!(got == sent, "reactor {reactor}, round {round}");
                    }
                    (client, echo)
                });
                pairs.push(pair.await.expect("warm-up task"));
            }
            let (foreign, foreign_echo) = pairs.remove(0);
            let (local, local_echo) = pairs.remove(0);
            // Reactor 1 uses reactor 0's client, and its own, turn about.
            runtime::spawn_on(1, async move {
                for (round, (a, b)) in messages(2).into_iter().zip(messages(3)).enumerate() {
                    let (sent, got) =
                        common::write_and_read_back(&foreign, a, 64, "reactor 0's socket").await;
                    assert!(got == sent, "reactor 0's socket, round {round}");
                    let (sent, got) =
                        common::write_and_read_back(&local, b, 64, "reactor 1's socket").await;
                    assert!(got == sent, "reactor 1's socket, round {round}");
                }
            })
            .await
            .expect("reactor 1's task");
            foreign_echo.await.expect("reactor 0's echo");
            local_echo.await.expect("reactor 1's echo");
            runtime::running_backend()
                .expect("backend")
                .reason()
                .to_string()
        })
        .await
        .expect("within 30 s")
    });
    if !reason.contains("direct descriptors (") {
        eprintln!("no registered file table here, so this ran by fd only: {reason}");
    }
}

/// A socket given a slot closes when dropped even while another request that names a slot
/// waits: a listener busy enough for a slot has an accept pending while a connection with
/// slots is dropped, and its peer sees the end at once. (Kernels before 6.13 let go of an
/// emptied slot's file only after such older requests ended; the runtime takes no slots there.)
#[test]
fn a_dropped_socket_closes_while_an_accept_by_slot_waits() {
    let Some(uring) = uring() else { return };
    let (reason, counted) = common::counted(uring, || async {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        // 20 accepts: the listener's later ones name its slot.
        let mut accepted = Vec::new();
        for _ in 0..20 {
            let client = TcpStream::connect(addr).await.expect("connect");
            let (server, _) = listener.accept().await.expect("accept");
            accepted.push((client, server));
        }
        let (client, server) = accepted.pop().expect("a pair");
        for round in 0..20 {
            let message = vec![round as u8; 32];
            let BufResult(res, _) = server.write_all(message.clone()).await;
            res.expect("write");
            let (sent, got) = common::write_and_read_back(&client, message, 64, "client").await;
            let BufResult(res, echoed) = server.read(vec![0u8; 64]).await;
            assert_eq!(&echoed[..res.expect("read")], &sent[..], "round {round}");
            assert_eq!(got.len(), 32);
        }
        let listener = std::rc::Rc::new(listener);
        let waiting = runtime::spawn({
            let listener = listener.clone();
            async move { listener.accept().await.map(|_| ()) }
        });
        runtime::yield_now().await;
        drop(server);
        let BufResult(res, _) =
            runtime::time::timeout(Duration::from_secs(5), client.read(vec![0u8; 64]))
                .await
                .expect("the dropped socket's end did not reach its peer while an accept waited");
        assert_eq!(res.expect("read"), 0, "bytes after the end");
        waiting.abort();
        let _ = waiting.await;
    });
    if reason.contains("direct descriptors (") {
        // The listener and both ends of the dropped connection.
        assert!(counted.direct_descriptors >= 3, "{counted:?}");
    }
}
