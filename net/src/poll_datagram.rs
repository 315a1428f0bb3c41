//! Poll-based datagram I/O over memory lent for one poll, for libraries that drive a UDP socket
//! from their own state machine (a QUIC implementation's `poll_recv` and `try_send`).
//!
//! As [`PollIo`](crate::PollIo) does for streams: a receive goes through
//! [`Source::poll_lent`] when the backend can do it within the poll (epoll's `recvmsg`;
//! io_uring's copy from the socket's multishot receive), and otherwise runs an owned receive
//! kept across polls, so a dropped poll loses no datagram. A send is a lent `sendmsg` on epoll;
//! on io_uring the datagram is copied into a buffer this adapter owns and sent by an owned
//! operation, accepted at once (one in flight at a time; [`poll_send_ready`] waits for it).
//!
//! [`poll_send_ready`]: PollDatagram::poll_send_ready

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use runtime_core::{BufResult, IoBuf, Lent, Source};
use socket2::SockAddr;

use crate::datagram::{sender, truncated, Datagram};
use crate::family::Family;

type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An owned receive in flight: the datagram's length and sender, with the buffer.
type Receiving<F> = Boxed<BufResult<(usize, <F as Family>::Addr), Vec<u8>>>;

/// Room for any UDP datagram: an owned receive has at least this much (or the caller's room,
/// if larger).
const DATAGRAM_ROOM: usize = 65_536;

/// The poll-side state of one datagram socket.
pub struct PollDatagram<S: Source, F: Family> {
    socket: Arc<Datagram<S, F>>,
    /// An owned receive in flight; its buffer comes back with the datagram.
    receiving: Option<Receiving<F>>,
    /// The owned receive's buffer, while none is in flight (kept for its allocation).
    received: Vec<u8>,
    /// A staged send in flight.
    sending: Option<Boxed<BufResult<usize, Vec<u8>>>>,
    /// The staging buffer, while no send is in flight (kept for its allocation).
    staging: Vec<u8>,
}

impl<S: Source, F: Family> std::fmt::Debug for PollDatagram<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollDatagram")
            .field("socket", &self.socket)
            .field("receiving", &self.receiving.is_some())
            .field("sending", &self.sending.is_some())
            .finish()
    }
}

/// Copies `src` into the start of `dst`, which is at least as long.
fn copy_into(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        d.write(*s);
    }
}

impl<S: Source, F: Family> PollDatagram<S, F> {
    /// The poll state of `socket` (which other tasks may keep using).
    pub fn new(socket: Arc<Datagram<S, F>>) -> Self {
        PollDatagram {
            socket,
            receiving: None,
            received: Vec::new(),
            sending: None,
            staging: Vec::new(),
        }
    }

    /// The socket.
    pub fn socket(&self) -> &Arc<Datagram<S, F>> {
        &self.socket
    }

    /// Receives one datagram into the start of `buf`: `Ready(Ok((len, sender)))`. A datagram
    /// longer than `buf` is an `InvalidData` error, as for [`Datagram::recv_from`].
    pub fn poll_recv_from(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<(usize, F::Addr)>> {
        loop {
            if let Some(receiving) = &mut self.receiving {
                let BufResult(res, got) = ready!(receiving.as_mut().poll(cx));
                self.receiving = None;
                let res = res.and_then(|(n, from)| {
                    if n > buf.len() {
                        return Err(truncated(n, buf.len()));
                    }
                    copy_into(buf, &got[..n]);
                    Ok((n, from))
                });
                self.received = got;
                return Poll::Ready(res);
            }
            let mut from = None;
            let room = buf.len();
            let owned_room = room.max(DATAGRAM_ROOM);
            let mut lent = Lent::RecvFrom {
                buf,
                from: &mut from,
            };
            match self.socket.source().poll_lent(&mut lent, cx) {
                Some(Poll::Ready(Err(e))) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(Poll::Ready(Ok(n))) if n > room => {
                    return Poll::Ready(Err(truncated(n, room)))
                }
                Some(Poll::Ready(res)) => {
                    return Poll::Ready(res.and_then(|n| Ok((n, sender::<F>(from)?))));
                }
                Some(Poll::Pending) => return Poll::Pending,
                None => {
                    let mut owned = std::mem::take(&mut self.received);
                    if owned.capacity() < owned_room {
                        // Zeroed once per allocation: memory checkers that cannot see the
                        // kernel's writes (valgrind) then see defined bytes.
                        owned = vec![0; owned_room];
                    }
                    owned.clear();
                    let socket = self.socket.clone();
                    self.receiving = Some(Box::pin(async move { socket.recv_from(owned).await }));
                }
            }
        }
    }

    /// Waits until no staged send is in flight; returns the error of one that failed.
    pub fn poll_send_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(sending) = &mut self.sending else {
            return Poll::Ready(Ok(()));
        };
        let BufResult(res, buf) = ready!(sending.as_mut().poll(cx));
        self.sending = None;
        self.staging = buf;
        Poll::Ready(res.map(drop))
    }

    /// Sends `buf` as one datagram to `to`: `Ready(Ok(len))` once it was sent (epoll) or staged
    /// to be sent (io_uring). `Pending` while an earlier staged send is in flight or the socket
    /// has no room; polled with a no-op waker, that is a non-blocking `try_send`.
    pub fn poll_send_to(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        to: &SockAddr,
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_send_ready(cx))?;
        loop {
            match self
                .socket
                .source()
                .poll_lent(&mut Lent::SendTo { buf, to }, cx)
            {
                Some(Poll::Ready(Err(e))) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(poll) => return poll,
                None => break,
            }
        }
        let mut staging = std::mem::take(&mut self.staging);
        staging.clear();
        staging.extend_from_slice(buf);
        let (socket, to) = (self.socket.clone(), to.clone());
        self.sending = Some(Box::pin(async move {
            let BufResult(res, staging) = socket.send_to_sock(staging.slice(..), &to).await;
            BufResult(res, staging.into_inner())
        }));
        // Start the send now (its completion wakes this task).
        if let Poll::Ready(Err(e)) = self.poll_send_ready(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }
}

impl<S: Source, F: Family> Drop for PollDatagram<S, F> {
    fn drop(&mut self) {
        // A datagram a send accepted goes out: the staged send finishes on its own.
        if let Some(sending) = self.sending.take() {
            runtime_core::detach(sending);
        }
    }
}
