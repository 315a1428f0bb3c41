//! How each operation becomes a submission queue entry.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};
use runtime_core::{OpCode, OpKind};

/// How an SQE names its socket.
///
/// A slot is only safe to name in an SQE the kernel issues when it is submitted, in SQ order
/// (`direct_descriptors.rs`): never give one `IOSQE_ASYNC`, `IO_LINK` or `IO_DRAIN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum File {
    /// By fd.
    Fd(RawFd),
    /// By its slot in the ring's table of registered files (`direct_descriptors.rs`).
    Fixed(u32),
}

impl File {
    /// The SQE's fd field and the flags that say what it is. (The builders take either
    /// `types::Fd` or `types::Fixed`; `Fixed(i)` is the same SQE as `Fd(i)` with
    /// `IOSQE_FIXED_FILE`, which one function can make for both.)
    fn parts(self) -> (types::Fd, squeue::Flags) {
        match self {
            File::Fd(fd) => (types::Fd(fd), squeue::Flags::empty()),
            File::Fixed(slot) => (types::Fd(slot as RawFd), squeue::Flags::FIXED_FILE),
        }
    }
}

/// The SQE for `code` on `fd`. The user data is set by the caller. Taking the `OpCode` (not a
/// bare `OpKind`) is what makes its pointers valid for the kernel: the `OpCode` invariant.
pub(crate) fn build(fd: RawFd, code: &OpCode) -> squeue::Entry {
    build_on(File::Fd(fd), code)
}

/// As [`build`], naming the socket as `file` says.
fn build_on(file: File, code: &OpCode) -> squeue::Entry {
    let (fd, flags) = file.parts();
    let entry = match *code.kind() {
        OpKind::Accept { addr, len } => opcode::Accept::new(fd, addr.cast(), len)
            .flags(libc::SOCK_CLOEXEC)
            .build(),
        OpKind::Connect { addr, len } => opcode::Connect::new(fd, addr.cast(), len).build(),
        OpKind::Recv { buf, len } => opcode::Recv::new(fd, buf, len).build(),
        OpKind::Send { buf, len } => opcode::Send::new(fd, buf, len)
            .flags(libc::MSG_NOSIGNAL)
            .build(),
        OpKind::RecvMsg { msg } => opcode::RecvMsg::new(fd, msg).build(),
        OpKind::RecvMessage { msg, flags } => {
            opcode::RecvMsg::new(fd, msg).flags(flags as u32).build()
        }
        OpKind::SendMsg { msg } => opcode::SendMsg::new(fd, msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build(),
        OpKind::Shutdown { how } => opcode::Shutdown::new(fd, how).build(),
    };
    entry.flags(flags)
}

/// `IORING_SEND_ZC_REPORT_USAGE` (6.2+): the notification says whether the kernel copied after
/// all.
pub(crate) const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;

/// How a ring makes zero-copy sends: from how many bytes, with which `SEND_ZC` flags.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ZeroCopy {
    pub(crate) from: u32,
    pub(crate) flags: u16,
}

/// In a zero-copy send's notification result: the kernel copied the bytes.
pub(crate) const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// As [`build`], for an operation the op table tracks: a send of at least `zero_copy.from`
/// bytes on a socket that `may_zero_copy` (asked only then) becomes a zero-copy `SEND_ZC`,
/// which completes twice: with the send's result (flagged `F_MORE`), then with a notification
/// (`F_NOTIF`) once the kernel no longer reads the buffer. Returns whether it did.
pub(crate) fn build_tracked(
    file: File,
    code: &OpCode,
    zero_copy: Option<ZeroCopy>,
    may_zero_copy: impl FnOnce() -> bool,
) -> (squeue::Entry, bool) {
    match (*code.kind(), zero_copy) {
        (OpKind::Send { buf, len }, Some(zc)) if len >= zc.from && may_zero_copy() => {
            let (fd, flags) = file.parts();
            let entry = opcode::SendZc::new(fd, buf, len)
                .flags(libc::MSG_NOSIGNAL)
                .zc_flags(zc.flags)
                .build();
            (entry.flags(flags), true)
        }
        _ => (build_on(file, code), false),
    }
}

/// The opcodes the driver needs, with their names for error messages.
pub(crate) const REQUIRED_OPCODES: &[(u8, &str)] = &[
    (opcode::Accept::CODE, "ACCEPT"),
    (opcode::Connect::CODE, "CONNECT"),
    (opcode::Recv::CODE, "RECV"),
    (opcode::Send::CODE, "SEND"),
    (opcode::RecvMsg::CODE, "RECVMSG"),
    (opcode::SendMsg::CODE, "SENDMSG"),
    (opcode::Shutdown::CODE, "SHUTDOWN"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    (opcode::Close::CODE, "CLOSE"),
    (opcode::Read::CODE, "READ"),
];
