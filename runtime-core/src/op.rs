//! Operations as values, and the future that drives one through a [`Source`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::driver::Source;

/// What an operation does, on the fd of the [`Source`] it is polled through.
///
/// Adding a variant makes the compiler list every place to touch: the uring SQE builder, the
/// epoll attempt and the readiness direction.
#[derive(Debug, Clone, Copy)]
pub enum OpKind {
    /// `accept4`: the peer address is written to `addr`, its length to `len`.
    Accept {
        /// Where the peer address goes.
        addr: *mut libc::sockaddr_storage,
        /// In: size of `addr`; out: the address length.
        len: *mut libc::socklen_t,
    },
    /// `connect` to the address at `addr`.
    Connect {
        /// The address to connect to.
        addr: *const libc::sockaddr_storage,
        /// Its length.
        len: libc::socklen_t,
    },
    /// `recv` into `len` bytes at `buf`.
    Recv {
        /// Destination.
        buf: *mut u8,
        /// Bytes available at `buf`.
        len: u32,
    },
    /// `send` (with `MSG_NOSIGNAL`) of `len` bytes at `buf`.
    Send {
        /// Source.
        buf: *const u8,
        /// Bytes to send.
        len: u32,
    },
    /// `recvmsg` (vectored read).
    RecvMsg {
        /// The message header; its iovecs point at the destination buffers.
        msg: *mut libc::msghdr,
    },
    /// `recvmsg` of one message as the kernel gives it (a datagram, or bytes with control data),
    /// with `flags`: never served from bytes an earlier receive took, never kept for a later
    /// read, so a name or control data is never paired with the wrong bytes.
    RecvMessage {
        /// The message header: iovecs, name and control buffers.
        msg: *mut libc::msghdr,
        /// `recvmsg` flags (`MSG_TRUNC`, `MSG_PEEK`, `MSG_CMSG_CLOEXEC`).
        flags: i32,
    },
    /// `sendmsg` (vectored write, with `MSG_NOSIGNAL`); the header may name a destination and
    /// carry control data.
    SendMsg {
        /// The message header; its iovecs point at the source buffers.
        msg: *const libc::msghdr,
    },
    /// `shutdown(how)`.
    Shutdown {
        /// `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`.
        how: i32,
    },
}

/// Readiness an operation waits for, for readiness-based drivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The fd must be readable (or have a pending connection).
    Read,
    /// The fd must be writable.
    Write,
}

impl OpKind {
    /// Which readiness this operation waits for; `None` for one that never waits.
    pub fn direction(&self) -> Option<Direction> {
        match self {
            OpKind::Accept { .. }
            | OpKind::Recv { .. }
            | OpKind::RecvMsg { .. }
            | OpKind::RecvMessage { .. } => Some(Direction::Read),
            OpKind::Connect { .. } | OpKind::Send { .. } | OpKind::SendMsg { .. } => {
                Some(Direction::Write)
            }
            OpKind::Shutdown { .. } => None,
        }
    }
}

/// An [`OpKind`] whose pointers are known to be valid.
///
/// # Invariant
/// Every pointer in `kind` is valid for the access the operation makes until the operation has
/// completed or its memory has been handed to [`Source::drop_op`]. Only [`Op`], from the memory
/// it owns and the function whose promise [`Op::new`]'s caller makes, makes one.
#[derive(Debug)]
pub struct OpCode {
    kind: OpKind,
}

// SAFETY: the pointers point into memory owned by the operation's data, which is `Send` (an
// `Op`'s `T: Send`) and travels with it; an `OpCode` is never used apart from its `Op`, whose
// `Source` synchronises any access from another thread.
unsafe impl Send for OpCode {}

impl OpCode {
    /// The operation.
    pub fn kind(&self) -> &OpKind {
        &self.kind
    }
}

/// The future of one operation: polls it through its source and hands back the memory it owned.
///
/// Dropped before completion, it gives that memory to the driver ([`Source::drop_op`]) instead of
/// freeing it, so the kernel never writes into freed memory.
pub struct Op<'a, S: Source, T: Send + 'static> {
    source: &'a S,
    /// Derives the operation's pointers from its memory, where that memory finally lives.
    kind_of: fn(&mut T) -> OpKind,
    /// The operation, once started: its pointers were derived from `data` in place at the first
    /// poll (after every move of the `Box`es it may own), and are the ones the kernel uses.
    code: Option<OpCode>,
    state: S::OpState,
    /// The memory `code` points into. `None` once the result has been returned.
    data: Option<T>,
}

impl<'a, S: Source, T: Send + 'static> Op<'a, S, T> {
    /// An operation on `source` that owns `data`; `kind_of` says what to do with it.
    ///
    /// # Safety
    /// Every pointer in the `OpKind` that `kind_of` returns must point into memory owned by
    /// `data` that does not move when `data` moves (heap memory of a buffer or a `Box`) and
    /// stays valid for the operation's access for as long as `data` lives.
    pub unsafe fn new(source: &'a S, data: T, kind_of: fn(&mut T) -> OpKind) -> Self {
        Op {
            source,
            kind_of,
            code: None,
            state: S::OpState::default(),
            data: Some(data),
        }
    }

    /// The source it is polled through.
    pub(crate) fn source(&self) -> &'a S {
        self.source
    }

    /// Its memory back if it was never started (never reached its source), so that nothing
    /// can still use that memory; `None` once started.
    pub(crate) fn take_unstarted(&mut self) -> Option<T> {
        match self.code {
            None => self.data.take(),
            Some(_) => None,
        }
    }
}

// The op never pins `data`: the kernel sees only the heap memory `data` owns, which stays put
// however the op moves.
impl<S: Source, T: Send + 'static> Unpin for Op<'_, S, T> {}

impl<S: Source, T: Send + 'static> Future for Op<'_, S, T> {
    type Output = (io::Result<u32>, T);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let data = this
            .data
            .as_mut()
            .expect("operation polled after completion");
        if crate::coop::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        let kind_of = this.kind_of;
        let code = this.code.get_or_insert_with(|| OpCode {
            kind: kind_of(data),
        });
        loop {
            match this.source.poll_op(&mut this.state, code, cx) {
                // A signal interrupted the syscall: start the operation again.
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {
                    this.state = S::OpState::default();
                }
                Poll::Ready(res) => {
                    let data = this.data.take().expect("checked above");
                    return Poll::Ready((res, data));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<S: Source, T: Send + 'static> Drop for Op<'_, S, T> {
    fn drop(&mut self) {
        if let (Some(data), Some(code)) = (self.data.take(), &self.code) {
            self.source.drop_op(&mut self.state, code, Box::new(data));
        }
    }
}

/// An operation whose result becomes its caller's output as it completes.
///
/// The typed operations most polled (a receive, a send) return one rather than an `async fn`'s
/// future: every poll then goes straight to the [`Op`], with no state machine around it to
/// resume, and the output is made in the same poll.
#[must_use = "futures do nothing unless polled"]
pub(crate) struct Then<'a, S: Source, T: Send + 'static, F> {
    op: Op<'a, S, T>,
    /// Makes the output; taken when the operation completes.
    then: Option<F>,
}

impl<'a, S: Source, T: Send + 'static, F> Then<'a, S, T, F> {
    /// `op`, whose result and memory `then` turns into the output.
    pub(crate) fn new(op: Op<'a, S, T>, then: F) -> Self {
        Then {
            op,
            then: Some(then),
        }
    }
}

impl<S: Source, T: Send + 'static, F, O> Future for Then<'_, S, T, F>
where
    F: FnOnce(io::Result<u32>, T) -> O + Unpin,
{
    type Output = O;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<O> {
        let this = self.get_mut();
        let (res, data) = std::task::ready!(Pin::new(&mut this.op).poll(cx));
        let then = this.then.take().expect("operation polled after completion");
        Poll::Ready(then(res, data))
    }
}

impl<S: Source, T: Send + 'static, F> std::fmt::Debug for Then<'_, S, T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.op.fmt(f)
    }
}

impl<S: Source, T: Send + 'static> std::fmt::Debug for Op<'_, S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Op").field("code", &self.code).finish()
    }
}
