//! What a socket's multishot receive delivers: bytes of a stream, which reads take across
//! buffer boundaries, or whole datagrams (`RECVMSG` multishot, kernel 6.0+), one per buffer
//! with the sender's address, which a datagram receive takes one at a time.

use std::io;
use std::mem;
use std::os::fd::BorrowedFd;

use io_uring::types::RecvMsgOut;
use io_uring::{opcode, squeue, types};
use runtime_core::OpKind;
use socket2::Type;

use crate::multishot::MAX_QUEUED;
use crate::provided::{BufferRings, DATAGRAM, STREAM};
use crate::socket_kind::is_inet;

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
        if !(datagram_buffers && is_inet(fd, Type::DGRAM, None)) {
            return Framing::OneShot;
        }
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        Framing::Datagram(Box::new(Template(msg)))
    }

    /// The multishot receive's SQE (user data to be set), and whether it is a bundle: a
    /// stream's receives into the stream ring `rings` has, as a bundle if `rings` uses them.
    pub(crate) fn arm(&self, fd: i32, rings: &BufferRings) -> (squeue::Entry, bool) {
        let group = rings.stream.shape.group;
        match self {
            Framing::Datagram(template) => {
                let entry = opcode::RecvMsgMulti::new(types::Fd(fd), &template.0, DATAGRAM.group);
                (entry.build(), false)
            }
            _ if rings.bundles() => {
                let entry = opcode::RecvMulti::new(types::Fd(fd), group).len(BUNDLE_BYTES);
                (bundle(entry.build()), true)
            }
            _ => (opcode::RecvMulti::new(types::Fd(fd), group).build(), false),
        }
    }
}

/// The most one bundle completion carries: the buffers a socket may queue (the kernel's default
/// is all the socket holds, which one socket could take the whole ring with). A full bundle
/// then cancels the receive, as that many single-buffer completions would. Kernels before 6.17
/// refuse a length on a multishot receive (`EINVAL`); the ring then stops using bundles.
const BUNDLE_BYTES: u32 = (MAX_QUEUED * STREAM.size) as u32;

/// `entry`, a multishot `RECV`, made a bundle (`IORING_RECVSEND_BUNDLE` in its `ioprio`): one
/// completion for every buffer it fills.
fn bundle(mut entry: squeue::Entry) -> squeue::Entry {
    const IORING_RECVSEND_BUNDLE: u16 = 1 << 4;
    /// Where `ioprio` lies in `struct io_uring_sqe`: after `opcode` and `flags`, one byte each.
    const IOPRIO_OFFSET: usize = 2;
    let sqe = std::ptr::addr_of_mut!(entry).cast::<u8>();
    // SAFETY: `squeue::Entry` is a `repr(C)` wrapper of the kernel's `io_uring_sqe`, whose u16
    // `ioprio` is at byte 2 (the kernel's ABI); `entry` is 8-byte aligned, so the field is
    // aligned, and it is written in place while `entry` is exclusively ours.
    unsafe {
        let ioprio = sqe.add(IOPRIO_OFFSET).cast::<u16>();
        ioprio.write(ioprio.read() | IORING_RECVSEND_BUNDLE);
    }
    entry
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(entry: squeue::Entry) -> [u8; 64] {
        // SAFETY: `squeue::Entry` is a `repr(C)` wrapper of the 64-byte `io_uring_sqe`, every
        // byte of which the opcode builders initialise (they start from zeroes).
        unsafe { mem::transmute::<squeue::Entry, [u8; 64]>(entry) }
    }

    #[test]
    fn a_bundle_is_the_crates_bundle_opcode_with_a_length() {
        let fd = types::Fd(3);
        let ours = bytes(bundle(opcode::RecvMulti::new(fd, 5).len(100).build()));
        let mut crates = bytes(opcode::RecvMultiBundle::new(fd, 5).build());
        // The crate's bundle has no length; `len` is the u32 at byte 24.
        crates[24..28].copy_from_slice(&100u32.to_ne_bytes());
        assert_eq!(ours, crates);
        let plain = bytes(opcode::RecvMulti::new(fd, 5).len(100).build());
        assert_ne!(ours, plain);
    }
}
