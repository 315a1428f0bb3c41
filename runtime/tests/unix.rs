//! Unix sockets on both backends: streams over filesystem and abstract addresses, pairs and
//! split halves, datagrams with their senders, peer credentials, fds passed within a process
//! and between two processes, `std` conversions, and bad input as errors.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use runtime::net::{UnixDatagram, UnixListener, UnixStream};
use runtime::BufResult;

/// A socket path of this test process that no other test uses; removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("rt-unix-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempPath(path)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn echo_once(stream: UnixStream) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let BufResult(n, b) = stream.read(buf).await;
        let n = n.expect("read");
        if n == 0 {
            return;
        }
        let BufResult(res, b) = stream.write_all(b).await;
        res.expect("write");
        buf = b;
        buf.clear();
    }
}

#[runtime::test]
async fn a_stream_over_a_filesystem_path_echoes() {
    let path = TempPath::new();
    let listener = UnixListener::bind(&path.0).expect("bind");
    assert_eq!(
        listener.local_addr().expect("addr").as_pathname(),
        Some(path.0.as_path())
    );
    let server = runtime::spawn(async move {
        let (stream, peer) = listener.accept().await.expect("accept");
        assert!(
            peer.is_unnamed(),
            "a connecting socket has no name: {peer:?}"
        );
        echo_once(stream).await;
    });
    let client = UnixStream::connect(&path.0).await.expect("connect");
    assert_eq!(
        client.peer_addr().expect("peer").as_pathname(),
        Some(path.0.as_path())
    );
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (read, write) = client.into_split();
    let writer = runtime::spawn(async move {
        write.write_all(payload).await.0.expect("write_all");
        write
            .shutdown(std::net::Shutdown::Write)
            .await
            .expect("shutdown");
    });
    let mut got = Vec::new();
    let mut buf = Vec::with_capacity(8192);
    loop {
        let BufResult(n, b) = read.read(buf).await;
        if n.expect("read") == 0 {
            break;
        }
        got.extend_from_slice(&b);
        buf = b;
        buf.clear();
    }
    writer.await.expect("writer");
    server.await.expect("server");
    let expected: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(got, expected, "every byte back, in order");
}

#[runtime::test]
async fn abstract_addresses_and_pairs() {
    let name = format!("\0rt-abstract-{}", std::process::id());
    let listener = UnixListener::bind(&name).expect("bind abstract");
    let addr = listener.local_addr().expect("addr");
    assert_eq!(addr.as_abstract_name(), Some(&name.as_bytes()[1..]));
    assert_eq!(addr.as_pathname(), None);
    let server = runtime::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        echo_once(stream).await;
    });
    let client = UnixStream::connect(&name).await.expect("connect abstract");
    client
        .write_all(b"abstract".to_vec())
        .await
        .0
        .expect("write");
    let BufResult(n, buf) = client.read(Vec::with_capacity(16)).await;
    assert_eq!(&buf[..n.expect("read")], b"abstract");
    drop(client);
    server.await.expect("server");

    let (a, b) = UnixStream::pair().expect("pair");
    a.write_all(b"paired".to_vec()).await.0.expect("write");
    let BufResult(n, buf) = b.read(Vec::with_capacity(16)).await;
    assert_eq!(&buf[..n.expect("read")], b"paired");
}

#[runtime::test]
async fn peer_credentials_name_this_process() {
    let (a, b) = UnixStream::pair().expect("pair");
    let cred = a.peer_cred().expect("peer_cred");
    assert_eq!(cred.pid, std::process::id() as i32);
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    assert_eq!((cred.uid, cred.gid), (uid, gid));
    assert_eq!(b.peer_cred().expect("peer_cred"), cred);
    let (d, _e) = UnixDatagram::pair().expect("pair");
    assert_eq!(d.peer_cred().expect("peer_cred").pid, cred.pid);
}

#[runtime::test]
async fn bad_addresses_are_clear_errors() {
    let long = std::env::temp_dir().join("x".repeat(200));
    let err = UnixListener::bind(&long).expect_err("too long");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("path"), "{err}");
    let err = UnixStream::connect(&long).await.expect_err("too long");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);

    let missing = TempPath::new();
    let err = UnixStream::connect(&missing.0)
        .await
        .expect_err("nobody there");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");

    let taken = TempPath::new();
    let _first = UnixListener::bind(&taken.0).expect("bind");
    let err = UnixListener::bind(&taken.0).expect_err("taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");

    // A TCP-only call on the wrong family: a datagram to an IPv6 address from an IPv4 socket.
    let v4 = runtime::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let BufResult(res, _) = v4.send_to(b"x".to_vec(), "[::1]:9").await;
    let err = res.expect_err("wrong family");
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::EAFNOSUPPORT) | Some(libc::EINVAL)
        ),
        "{err}"
    );
}

#[runtime::test]
async fn datagrams_carry_their_sender_path() {
    let a_path = TempPath::new();
    let b_path = TempPath::new();
    let a = UnixDatagram::bind(&a_path.0).expect("bind");
    let b = UnixDatagram::bind(&b_path.0).expect("bind");
    a.send_to(b"one".to_vec(), &b_path.0)
        .await
        .0
        .expect("send_to");
    let BufResult(got, buf) = b.recv_from(Vec::with_capacity(8)).await;
    let (n, from) = got.expect("recv_from");
    assert_eq!(&buf[..n], b"one");
    assert_eq!(from.as_pathname(), Some(a_path.0.as_path()));

    let unbound = UnixDatagram::unbound().expect("unbound");
    unbound
        .send_to(b"anon".to_vec(), &b_path.0)
        .await
        .0
        .expect("send_to");
    let BufResult(got, _) = b.recv_from(Vec::with_capacity(8)).await;
    assert!(got.expect("recv_from").1.is_unnamed());

    unbound.connect(&a_path.0).await.expect("connect");
    unbound.send(b"conn".to_vec()).await.0.expect("send");
    let BufResult(got, buf) = a.recv(Vec::with_capacity(8)).await;
    assert_eq!(&buf[..got.expect("recv")], b"conn");

    b.send_to(vec![1u8; 64], &a_path.0)
        .await
        .0
        .expect("send_to");
    let BufResult(got, _) = a.recv_from(Vec::with_capacity(8)).await;
    assert_eq!(
        got.expect_err("truncated").kind(),
        std::io::ErrorKind::InvalidData
    );
}

/// A socket with `text` waiting in it and its peer closed: read to the end, it gives `text`.
fn pipe_holding(text: &[u8]) -> OwnedFd {
    let (reader, mut writer) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    writer.write_all(text).expect("write");
    reader.into()
}

fn read_all(fd: OwnedFd) -> Vec<u8> {
    let mut file = std::fs::File::from(fd);
    let mut out = Vec::new();
    file.read_to_end(&mut out).expect("read passed fd");
    out
}

#[runtime::test]
async fn fds_pass_over_datagrams_and_streams() {
    let (a, b) = UnixDatagram::pair().expect("pair");
    let one = pipe_holding(b"first pipe");
    let two = pipe_holding(b"second pipe");
    let BufResult(sent, _) = a
        .send_with_fds(b"two fds".to_vec(), &[one.as_fd(), two.as_fd()], None)
        .await;
    assert_eq!(sent.expect("send_with_fds"), 7);
    // Our copies close: the peer's copies are its own.
    drop((one, two));
    let BufResult(got, buf) = b.recv_with_fds(Vec::with_capacity(16), 4).await;
    let mut got = got.expect("recv_with_fds");
    assert_eq!(&buf[..got.len], b"two fds");
    assert_eq!(got.fds.len(), 2);
    assert_eq!(read_all(got.fds.remove(0)), b"first pipe");
    assert_eq!(read_all(got.fds.remove(0)), b"second pipe");

    // More fds than room: an error, and the extra ones are closed by the kernel, not leaked.
    let three: Vec<OwnedFd> = (0..3).map(|_| pipe_holding(b"x")).collect();
    let borrowed: Vec<_> = three.iter().map(|f| f.as_fd()).collect();
    a.send_with_fds(b"3".to_vec(), &borrowed, None)
        .await
        .0
        .expect("send");
    let BufResult(got, _) = b.recv_with_fds(Vec::with_capacity(4), 1).await;
    assert_eq!(
        got.expect_err("no room").kind(),
        std::io::ErrorKind::InvalidData
    );

    let (s, t) = UnixStream::pair().expect("pair");
    let pipe = pipe_holding(b"over a stream");
    s.send_with_fds(b"S".to_vec(), &[pipe.as_fd()])
        .await
        .0
        .expect("send");
    let BufResult(got, buf) = t.recv_with_fds(Vec::with_capacity(4), 1).await;
    let mut got = got.expect("recv_with_fds");
    assert_eq!(&buf[..got.len], b"S");
    assert_eq!(read_all(got.fds.remove(0)), b"over a stream");
}

/// Set in the child process of the two-process test: the socket path to send an fd to.
const CHILD_PATH: &str = "UNIX_FD_CHILD_PATH";

/// The child's side: connects to the parent and sends it the read end of a pipe holding a
/// message with the child's pid. Runs only in the child (re-executed test binary).
#[test]
fn fd_passing_child() {
    let Ok(path) = std::env::var(CHILD_PATH) else {
        return;
    };
    runtime::Builder::new().block_on(async move {
        let stream = UnixStream::connect(&path).await.expect("child connect");
        let pipe = pipe_holding(format!("from pid {}", std::process::id()).as_bytes());
        stream
            .send_with_fds(b"fd".to_vec(), &[pipe.as_fd()])
            .await
            .0
            .expect("child send");
        // Wait for the parent to close, so the fd is surely received first.
        let BufResult(n, _) = stream.read(Vec::with_capacity(1)).await;
        assert_eq!(n.expect("child read"), 0);
    });
}

#[runtime::test]
async fn an_fd_passes_between_two_processes() {
    let path = TempPath::new();
    let listener = UnixListener::bind(&path.0).expect("bind");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "fd_passing_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_PATH, &path.0)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn child");
    let (stream, _) = listener.accept().await.expect("accept");
    let cred = stream.peer_cred().expect("peer_cred");
    assert_eq!(cred.pid, child.id() as i32, "the peer is the child");
    let BufResult(got, buf) = stream.recv_with_fds(Vec::with_capacity(4), 1).await;
    let mut got = got.expect("recv_with_fds");
    assert_eq!(&buf[..got.len], b"fd");
    let text = read_all(got.fds.remove(0));
    assert_eq!(text, format!("from pid {}", child.id()).as_bytes());
    drop(stream);
    let status = runtime::pool::spawn_blocking(move || child.wait())
        .await
        .expect("pool")
        .expect("wait");
    assert!(status.success(), "the child failed: {status}");
}

#[runtime::test]
async fn std_unix_sockets_go_in_and_out() {
    let path = TempPath::new();
    let std_listener = std::os::unix::net::UnixListener::bind(&path.0).expect("std bind");
    let listener = UnixListener::from_std(std_listener).expect("from_std");
    let server = runtime::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        echo_once(stream).await;
        listener
    });
    let std_client = std::os::unix::net::UnixStream::connect(&path.0).expect("std connect");
    let client = UnixStream::from_std(std_client).expect("from_std");
    client.write_all(b"in and".to_vec()).await.0.expect("write");
    let BufResult(n, buf) = client.read(Vec::with_capacity(16)).await;
    assert_eq!(&buf[..n.expect("read")], b"in and");
    if common::on_uring() {
        // Read once, so its multishot receive is armed: handing it over is refused, and the
        // stream comes back working.
        let err = client.into_std().expect_err("armed");
        assert_eq!(err.error().kind(), std::io::ErrorKind::InvalidInput);
        let client = err.into_inner();
        client.write_all(b"still".to_vec()).await.0.expect("write");
        let BufResult(n, buf) = client.read(Vec::with_capacity(16)).await;
        assert_eq!(&buf[..n.expect("read")], b"still");
        drop(client);
    } else {
        let mut std_client = client.into_std().expect("into_std");
        // Blocking calls go to the pool: the echo runs on this reactor.
        let back = runtime::pool::spawn_blocking(move || {
            std_client.write_all(b" out").expect("std write");
            let mut back = [0u8; 4];
            std_client.read_exact(&mut back).expect("std read");
            back
        })
        .await
        .expect("pool");
        assert_eq!(&back, b" out");
    }
    let listener = server.await.expect("server");
    let std_listener = listener.into_std().expect("listener into_std");
    std_listener.set_nonblocking(true).expect("nonblocking");
    assert_eq!(
        std_listener.accept().expect_err("none queued").kind(),
        std::io::ErrorKind::WouldBlock
    );
}

/// Receives that carry fds, dropped at random points (before the kernel saw them, while they
/// wait, after the datagram came): no fd ever leaks. Each passed fd is one end of a socket pair
/// whose other end reads end-of-file only once every copy of it is closed: the queued ones when
/// the receiving socket closes, the received ones by whoever took them, and those that came
/// into a dropped receive by the runtime.
#[runtime::test]
async fn dropped_receives_of_fds_leak_none() {
    use std::os::unix::net::UnixStream as StdStream;
    let rng = common::Rng::new(0x05ee_dfd5);
    let (tx, rx) = UnixDatagram::pair().expect("pair");
    let rx = std::rc::Rc::new(rx);
    let mut watchers = Vec::new();
    let mut received = 0;
    for _ in 0..common::scaled(300) {
        // The receive starts first and is dropped at a random point; the datagram is sent
        // after a random number of turns, so it may come before, during or after the drop.
        let receive = {
            let rx = rx.clone();
            let drop_after = rng.drop_after();
            runtime::spawn(async move {
                let recv = rx.recv_with_fds(Vec::with_capacity(4), 1);
                let got = runtime::time::timeout(drop_after, recv).await.ok()?;
                Some(got.0.expect("recv_with_fds").fds.len())
            })
        };
        for _ in 0..rng.next() % 4 {
            runtime::yield_now().await;
        }
        let (watcher, passed) = StdStream::pair().expect("pair");
        watcher.set_nonblocking(true).expect("nonblocking");
        tx.send_with_fds(b"fd".to_vec(), &[passed.as_fd()], None)
            .await
            .0
            .expect("send");
        drop(passed);
        watchers.push(watcher);
        if receive.await.expect("receive task").is_some() {
            received += 1;
        }
    }
    drop((tx, rx));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let open = |w: &&StdStream| {
        let mut byte = [0u8; 1];
        !matches!((&**w).read(&mut byte), Ok(0))
    };
    loop {
        let still_open = watchers.iter().filter(open).count();
        if still_open == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{still_open} passed fds still open 10 s after everything closed"
        );
        runtime::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    eprintln!("{received} of {} receives completed", watchers.len());
}

/// A Unix stream stops a read at bytes that carried fds, with more queued behind them: a plain
/// reader must still get the rest (on epoll, a short read must not be taken to mean the socket
/// ran dry, or the next read waits for an event that never comes). The fds, not asked for, are
/// closed by the kernel.
#[runtime::test]
async fn plain_reads_go_past_bytes_that_carried_fds() {
    let (a, b) = UnixStream::pair().expect("pair");
    let passed = pipe_holding(b"unwanted");
    a.send_with_fds(b"A".to_vec(), &[passed.as_fd()])
        .await
        .0
        .expect("send with fds");
    a.write_all(b"B".to_vec()).await.0.expect("write");
    // Both sends are done; a timer makes the reactor park once, which takes the readiness
    // events of both before the first read, so the read after a short one has no event left
    // to wake it.
    runtime::time::sleep(std::time::Duration::from_millis(1)).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let read = b.read(Vec::with_capacity(16));
        let BufResult(n, buf) = runtime::time::timeout(std::time::Duration::from_secs(5), read)
            .await
            .expect("the bytes behind the fds are read within 5 s");
        assert!(n.expect("read") > 0, "end of file before the bytes");
        got.extend_from_slice(&buf);
    }
    assert_eq!(got, b"AB");
}

/// Receives with fds on a stream, each dropped after its bytes and fd arrived (the bytes are
/// sent and the reactor turns once more before the drop): the next receive gets those bytes
/// with that fd, in order. On io_uring the dropped one-shot `recvmsg` completed in the kernel,
/// and its message comes back whole from the salvage (counted).
#[runtime::test]
async fn a_stream_receive_of_fds_dropped_after_they_arrived_loses_nothing() {
    use std::os::unix::net::UnixStream as StdStream;
    let (tx, rx) = UnixStream::pair().expect("pair");
    let before = common::totals();
    for round in 0..16u8 {
        let msg = vec![round; 3 + round as usize];
        // Boxed, so that `drop` below drops the future itself.
        let mut receive = Box::pin(rx.recv_with_fds(Vec::with_capacity(64), 1));
        let first = common::poll_once(receive.as_mut()).await;
        assert!(first.is_none(), "round {round}: nothing was sent yet");
        let (mut watcher, passed) = StdStream::pair().expect("pair");
        let BufResult(sent, _) = tx.send_with_fds(msg.clone(), &[passed.as_fd()]).await;
        assert_eq!(sent.expect("send"), msg.len());
        drop(passed);
        runtime::yield_now().await;
        drop(receive);
        let next = rx.recv_with_fds(Vec::with_capacity(64), 1);
        let BufResult(got, buf) = runtime::time::timeout(std::time::Duration::from_secs(10), next)
            .await
            .expect("the dropped receive's bytes were lost: the next one got nothing");
        let got = got.expect("recv_with_fds");
        assert_eq!(&buf[..got.len], &msg[..], "round {round}");
        let [fd] = <[OwnedFd; 1]>::try_from(got.fds).expect("the fd came with its bytes");
        let mut passed = StdStream::from(fd);
        passed
            .write_all(&[round])
            .expect("write through the passed fd");
        let mut byte = [0u8; 1];
        watcher.read_exact(&mut byte).expect("read");
        assert_eq!(byte, [round], "round {round}: the fd is the one sent");
    }
    common::assert_salvaged_on_uring_since(&before);
}

/// Datagram receives on a named Unix socket, each dropped after its datagram arrived: the next
/// receive gets that datagram with its sender.
#[runtime::test]
async fn a_datagram_receive_dropped_after_it_arrived_keeps_its_sender() {
    let (a_path, b_path) = (TempPath::new(), TempPath::new());
    let a = UnixDatagram::bind(&a_path.0).expect("bind");
    let b = UnixDatagram::bind(&b_path.0).expect("bind");
    let before = common::totals();
    for round in 0..16u8 {
        let msg = vec![round; 1 + round as usize];
        let mut receive = Box::pin(b.recv_from(Vec::with_capacity(64)));
        let first = common::poll_once(receive.as_mut()).await;
        assert!(first.is_none(), "round {round}: nothing was sent yet");
        let BufResult(sent, _) = a.send_to(msg.clone(), &b_path.0).await;
        assert_eq!(sent.expect("send_to"), msg.len());
        runtime::yield_now().await;
        drop(receive);
        let next = b.recv_from(Vec::with_capacity(64));
        let BufResult(got, buf) = runtime::time::timeout(std::time::Duration::from_secs(10), next)
            .await
            .expect("the dropped receive's datagram was lost");
        let (n, from) = got.expect("recv_from");
        assert_eq!(&buf[..n], &msg[..], "round {round}");
        assert_eq!(
            from.as_pathname(),
            Some(a_path.0.as_path()),
            "round {round}"
        );
    }
    common::assert_salvaged_on_uring_since(&before);
}

/// A datagram larger than 64 KiB, polled into a buffer larger still: on io_uring a Unix
/// datagram socket's poll receives through an owned receive, which must have the caller's room,
/// not only room for a UDP datagram.
#[runtime::test]
async fn a_large_datagram_is_polled_whole_into_a_large_buffer() {
    use runtime::net::{PollDatagram, Unix};
    use std::mem::MaybeUninit;
    const LEN: usize = 100 * 1024;
    let (a, b) = UnixDatagram::pair().expect("pair");
    runtime::net::socket2::SockRef::from(&a)
        .set_send_buffer_size(1 << 20)
        .expect("SO_SNDBUF");
    runtime::net::socket2::SockRef::from(&b)
        .set_recv_buffer_size(1 << 20)
        .expect("SO_RCVBUF");
    let b = std::sync::Arc::new(b);
    let mut polled = PollDatagram::<Unix>::new(b.clone());
    for round in 0..3u8 {
        let BufResult(sent, _) = a.send(vec![round; LEN]).await;
        assert_eq!(sent.expect("send"), LEN);
        let mut room = vec![MaybeUninit::<u8>::uninit(); 256 * 1024];
        let got = std::future::poll_fn(|cx| polled.poll_recv_from(cx, &mut room));
        let (n, _) = runtime::time::timeout(std::time::Duration::from_secs(10), got)
            .await
            .expect("the datagram came")
            .expect("a 100 KiB datagram fits a 256 KiB buffer");
        assert_eq!(n, LEN, "round {round}");
        // SAFETY: the first `n` bytes were written by the receive.
        let data = unsafe { std::slice::from_raw_parts(room.as_ptr().cast::<u8>(), n) };
        assert!(data.iter().all(|&x| x == round), "round {round}");
    }
}
