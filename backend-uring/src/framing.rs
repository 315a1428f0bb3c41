//! What a socket's multishot receive delivers: bytes of a stream, which reads take across
//! buffer boundaries, or whole datagrams (`RECVMSG` multishot, kernel 6.0+), one per buffer
//! with the sender's address, which a datagram receive takes one at a time.

use std::io;
use std::mem;
use std::os::fd::BorrowedFd;

use io_uring::types::RecvMsgOut;
use io_uring::{opcode, squeue, types};
use runtime_core::OpKind;
use socket2::{Domain, SockRef, Type};

use crate::provided::{DATAGRAM, STREAM};

/// The header a datagram multishot receive is armed with: room for any address, no control
/// data. Only its lengths are set.
pub(crate) struct Template(libc::msghdr);

// SAFETY: the header's pointers are all null (only its lengths are set), so it refers to no
// memory of any thread.
unsafe impl Send for Template {}

/// What a queue holds.
#[derive(Default)]
pub(crate) enum Framing {
    /// No read yet.
    #[default]
    Undecided,
    /// A stream's bytes.
    Stream,
    /// A UDP socket's datagrams; the kernel reads the header when the receive is armed, so it
    /// lives in the queue (boxed, in place) for as long as the receive.
    Datagram(Box<Template>),
    /// Messages received one at a time, never through a multishot receive: a Unix datagram
    /// socket (whose messages may carry fds), or a ring without datagram buffers.
    OneShot,
}

/// What a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wants {
    /// Bytes of a stream (`Recv`, `RecvMsg`).
    Bytes,
    /// One message (`RecvMessage`).
    Message,
}

impl Wants {
    pub(crate) fn of(kind: &OpKind) -> Self {
        match kind {
            OpKind::RecvMessage { .. } => Wants::Message,
            _ => Wants::Bytes,
        }
    }
}

impl Framing {
    /// Whether a queue of this framing can answer a read that `wants`.
    pub(crate) fn serves(&self, wants: Wants) -> bool {
        matches!(
            (self, wants),
            (Framing::Stream, Wants::Bytes) | (Framing::Datagram(_), Wants::Message)
        )
    }

    pub(crate) fn is_undecided(&self) -> bool {
        matches!(self, Framing::Undecided)
    }

    /// The framing of socket `fd`, from its first read: messages go through a multishot
    /// receive only on a UDP socket, and only with datagram buffers.
    pub(crate) fn decide(fd: i32, wants: Wants, datagram_buffers: bool) -> Self {
        if wants == Wants::Bytes {
            return Framing::Stream;
        }
        // SAFETY: `fd` is the open fd of the source whose read this is, for this call.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = SockRef::from(&fd);
        let udp = matches!(socket.domain(), Ok(d) if d == Domain::IPV4 || d == Domain::IPV6)
            && matches!(socket.r#type(), Ok(t) if t == Type::DGRAM);
        if !(udp && datagram_buffers) {
            return Framing::OneShot;
        }
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        Framing::Datagram(Box::new(Template(msg)))
    }

    /// The multishot receive's SQE (user data to be set).
    pub(crate) fn arm(&self, fd: i32) -> squeue::Entry {
        match self {
            Framing::Datagram(template) => {
                opcode::RecvMsgMulti::new(types::Fd(fd), &template.0, DATAGRAM.group).build()
            }
            _ => opcode::RecvMulti::new(types::Fd(fd), STREAM.group).build(),
        }
    }
}

/// Copies the datagram in `buffer` (as a multishot `RECVMSG` wrote it) into the memory of the
/// `RecvMessage` read `kind`, as `recvmsg` would: the payload into its iovecs (as much as fits),
/// the sender into its name. Returns the result `recvmsg` would (the datagram's whole length
/// under `MSG_TRUNC`, else the bytes copied) and whether the datagram was consumed (not under
/// `MSG_PEEK`).
///
/// # Safety
/// `kind`'s header, iovecs and name buffer must be valid for writing the lengths they give.
pub(crate) unsafe fn copy_datagram(
    buffer: &[u8],
    template: &Template,
    kind: &OpKind,
) -> io::Result<(u32, bool)> {
    let OpKind::RecvMessage { msg, flags } = *kind else {
        unreachable!("a datagram queue answers message reads only");
    };
    let out = RecvMsgOut::parse(buffer, &template.0)
        .map_err(|()| io::Error::other("a multishot receive's datagram header is malformed"))?;
    // SAFETY: `msg` is valid (the caller's promise).
    let msg = unsafe { &mut *msg };
    let payload = out.payload_data();
    let (mut copied, mut room) = (0, 0);
    // SAFETY: the iovecs are valid (the caller's promise).
    for iov in unsafe { crate::salvage::iovecs(msg) } {
        room += iov.iov_len;
        let n = iov.iov_len.min(payload.len() - copied);
        // SAFETY: the iovec is valid for `iov_len >= n` bytes of writes; the datagram buffer
        // is ours, so the ranges do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(payload[copied..].as_ptr(), iov.iov_base.cast(), n)
        };
        copied += n;
    }
    if !msg.msg_name.is_null() {
        let name = out.name_data();
        let n = name.len().min(msg.msg_namelen as usize);
        // SAFETY: the name buffer is valid for `msg_namelen` bytes (the caller's promise).
        unsafe { std::ptr::copy_nonoverlapping(name.as_ptr(), msg.msg_name.cast(), n) };
        msg.msg_namelen = out.incoming_name_len();
    }
    msg.msg_controllen = 0;
    let whole = out.incoming_payload_len() as usize;
    if payload.len() < whole && copied == payload.len() && copied < room {
        // The ring's buffer cut the datagram short, and the reader had room for more: its
        // result cannot say how much of its buffer holds the datagram. (A ring buffer holds
        // any UDP datagram, so this does not happen.)
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {whole}-byte datagram was longer than the ring's receive buffers"),
        ));
    }
    msg.msg_flags = if whole > copied { libc::MSG_TRUNC } else { 0 };
    let result = if flags & libc::MSG_TRUNC != 0 {
        whole
    } else {
        copied
    };
    Ok((result as u32, flags & libc::MSG_PEEK == 0))
}
