//! Messages: one `recvmsg`/`sendmsg` with a peer address and file descriptors (`SCM_RIGHTS`)
//! beside the bytes. Datagram sockets and fd passing are built on these two operations.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use socket2::SockAddr;

use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::Source;
use crate::op::{Op, OpKind};
use crate::ops::{sock_addr_from_raw, MAX_LEN};

/// The most fds one message may carry (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// What [`recv_msg`] received besides the bytes.
#[derive(Debug)]
pub struct Received {
    /// The message's length. For a datagram larger than the buffer this is the datagram's
    /// whole length (more than the buffer took): see [`truncated`](Received::truncated).
    pub len: usize,
    /// Whether the datagram was longer than the buffer (the rest of it is gone).
    pub truncated: bool,
    /// The sender's address, if the socket reports one.
    pub addr: Option<SockAddr>,
    /// File descriptors that came with the message (close-on-exec).
    pub fds: Vec<OwnedFd>,
    /// Whether more fds came than there was room for (the kernel closed the rest).
    pub fds_truncated: bool,
}

/// How [`recv_msg`] receives.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecvOptions {
    /// Leave the message queued (`MSG_PEEK`).
    pub peek: bool,
    /// Room for this many fds (0: none; any that come are closed by the kernel).
    pub max_fds: usize,
    /// The socket is a datagram socket: report a datagram's whole length (`MSG_TRUNC`), so
    /// that one longer than the buffer shows. Never on a stream (on TCP, `MSG_TRUNC` discards
    /// the bytes).
    pub datagram: bool,
}

/// The fixed-size parts of a message header, together on the heap so that their addresses
/// survive every move of the operation.
struct Parts {
    msg: libc::msghdr,
    iov: libc::iovec,
    name: libc::sockaddr_storage,
}

/// The memory of one message operation.
struct Message<B> {
    buf: B,
    parts: Box<Parts>,
    control: Control,
    /// The fds a send passes: kept open until the kernel has read the message, so a number
    /// the caller closes meanwhile is never sent in their place.
    sent_fds: Vec<OwnedFd>,
    /// A receive's `recvmsg` flags.
    flags: i32,
}

/// Control data, in `u64`s for `cmsghdr`'s alignment; all zero until written.
struct Control {
    words: Box<[u64]>,
    /// Whether the kernel may have received fds into it that nobody took yet.
    receiving: bool,
}

// SAFETY: the raw pointers in `parts` point only into `parts`, `buf` and `control`, which move
// with the message; sending it to another thread sends that memory along with them.
unsafe impl<B: Send> Send for Message<B> {}

impl<B> Message<B> {
    fn new(buf: B, to: Option<&SockAddr>, control_len: usize) -> Self {
        // SAFETY: all-zero is a valid msghdr, iovec and sockaddr_storage.
        let mut parts: Box<Parts> = Box::new(unsafe { mem::zeroed() });
        if let Some(to) = to {
            // SAFETY: `to` holds `to.len()` bytes of address, at most a sockaddr_storage.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    to.as_ptr().cast::<u8>(),
                    (&mut parts.name as *mut libc::sockaddr_storage).cast::<u8>(),
                    to.len() as usize,
                )
            };
            parts.msg.msg_namelen = to.len();
        }
        let words = control_len.div_ceil(mem::size_of::<u64>());
        Message {
            buf,
            parts,
            control: Control {
                words: vec![0u64; words].into_boxed_slice(),
                receiving: false,
            },
            sent_fds: Vec::new(),
            flags: 0,
        }
    }

    /// Points the header at the iovec, the name (if it has one, or `receive` wants one) and
    /// the control data, from where they live now; the iovec covers `iov`.
    fn link(&mut self, iov: libc::iovec, receive: bool) -> *mut libc::msghdr {
        let parts = &mut *self.parts;
        parts.iov = iov;
        parts.msg.msg_iov = &mut parts.iov;
        parts.msg.msg_iovlen = 1;
        if receive {
            parts.msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        if parts.msg.msg_namelen > 0 {
            parts.msg.msg_name = (&mut parts.name as *mut libc::sockaddr_storage).cast();
        }
        let control = &mut self.control.words;
        if !control.is_empty() {
            parts.msg.msg_control = control.as_mut_ptr().cast();
            parts.msg.msg_controllen = mem::size_of_val(&**control) as _;
        }
        &mut parts.msg
    }
}

impl Control {
    /// Takes the fds the kernel received into the control data.
    fn take_fds(&mut self) -> Vec<OwnedFd> {
        let mut fds = Vec::new();
        if !self.receiving {
            return fds;
        }
        self.receiving = false;
        each_received_fd(&self.words, |fd| {
            // SAFETY: the kernel installed this fd for us with the message; nothing else
            // owns it, and it is taken once (`receiving` is now false).
            fds.push(unsafe { OwnedFd::from_raw_fd(fd) })
        });
        fds
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        // A receive dropped after the kernel delivered fds into it: close them, not leak them.
        // The memory is dropped only once the kernel is done with it (the `Source` contract).
        drop(self.take_fds());
    }
}

/// The control data a receive got, moved out of the receive's memory, owning the fds it
/// carries: they are closed when it drops, unless it was written into another receive's
/// control data first. A backend keeps one for a receive whose future was dropped after the
/// kernel completed it, until a later receive takes it.
pub struct ReceivedControl {
    words: Box<[u64]>,
    len: usize,
}

impl ReceivedControl {
    /// Moves the `len` bytes of control data at `control` (as the kernel wrote them for a
    /// receive) into a new value, and zeroes them there, so that the receive's own memory no
    /// longer names the fds (its drop closes nothing).
    ///
    /// # Safety
    /// `control` must be valid for `len` bytes of reads and writes, aligned for `cmsghdr`, and
    /// hold control data the kernel wrote for a receive whose fds nothing else owns.
    pub unsafe fn take(control: *mut u8, len: usize) -> Self {
        let mut words = vec![0u64; len.div_ceil(mem::size_of::<u64>())].into_boxed_slice();
        // SAFETY: `control` is valid for `len` bytes (the caller's promise) and `words` holds
        // at least `len` bytes; they do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(control, words.as_mut_ptr().cast::<u8>(), len);
            std::ptr::write_bytes(control, 0, len);
        }
        ReceivedControl { words, len }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the control data to `control`; the fds it names are then owned by whatever owns
    /// that memory (a receive that takes them as its own).
    ///
    /// # Safety
    /// `control` must be valid for `self.len()` bytes of writes, aligned for `cmsghdr`.
    pub unsafe fn give(mut self, control: *mut u8) {
        // SAFETY: the caller's promise; `words` holds at least `len` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(self.words.as_ptr().cast::<u8>(), control, self.len)
        };
        self.len = 0;
        self.words.fill(0);
    }
}

impl Drop for ReceivedControl {
    fn drop(&mut self) {
        each_received_fd(&self.words, |fd| {
            // SAFETY: this value owns the fds its control data names (`take`'s promise), and
            // `give` zeroes them once they belong to someone else.
            drop(unsafe { OwnedFd::from_raw_fd(fd) })
        });
    }
}

impl std::fmt::Debug for ReceivedControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedControl")
            .field("len", &self.len)
            .finish()
    }
}

/// Calls `f` with each fd of the `SCM_RIGHTS` messages in `control`. The buffer starts zeroed and
/// the kernel writes its messages from the start, so the first header of length zero ends them
/// (whether or not the kernel wrote the header's `msg_controllen` back).
fn each_received_fd(control: &[u64], mut f: impl FnMut(RawFd)) {
    let bytes = mem::size_of_val(control);
    let header = mem::size_of::<libc::cmsghdr>();
    let base = control.as_ptr().cast::<u8>();
    let mut offset = 0;
    while offset + header <= bytes {
        // SAFETY: `offset + header <= bytes`, and `offset` is a multiple of 8 (the alignment
        // CMSG_ALIGN gives on 64-bit Linux and that `u64`s give the buffer).
        let cmsg = unsafe { &*base.add(offset).cast::<libc::cmsghdr>() };
        #[allow(clippy::unnecessary_cast)] // `cmsg_len` is not `usize` on every libc
        let len = cmsg.cmsg_len as usize;
        if len < header || offset + len > bytes {
            return;
        }
        if cmsg.cmsg_level == libc::SOL_SOCKET && cmsg.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) is a pure size computation.
            let data_offset = unsafe { libc::CMSG_LEN(0) } as usize;
            let count = (len - data_offset) / mem::size_of::<RawFd>();
            for i in 0..count {
                // SAFETY: the fd lies inside this cmsg, inside the buffer (checked above);
                // `read_unaligned` because the data need not be aligned for `RawFd`.
                let fd = unsafe {
                    base.add(offset + data_offset + i * mem::size_of::<RawFd>())
                        .cast::<RawFd>()
                        .read_unaligned()
                };
                f(fd);
            }
        }
        // SAFETY: CMSG_SPACE is a pure size computation.
        offset += unsafe { libc::CMSG_SPACE((len - header) as u32) } as usize;
    }
}

/// The control-data room for `fds` descriptors.
fn control_space(fds: usize) -> usize {
    if fds == 0 {
        return 0;
    }
    // SAFETY: CMSG_SPACE is a pure size computation.
    unsafe { libc::CMSG_SPACE((fds * mem::size_of::<RawFd>()) as u32) as usize }
}

fn too_many_fds(n: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{n} file descriptors in one message: at most {MAX_FDS} fit"),
    )
}

/// Receives one message into `buf` (from its start, up to its capacity). On a datagram socket a
/// datagram longer than the buffer fills it and reports [`Received::truncated`].
pub async fn recv_msg<S: Source, B: IoBufMut>(
    source: &S,
    buf: B,
    options: RecvOptions,
) -> BufResult<Received, B> {
    if options.max_fds > MAX_FDS {
        return BufResult(Err(too_many_fds(options.max_fds)), buf);
    }
    let mut message = Message::new(buf, None, control_space(options.max_fds));
    message.control.receiving = true;
    message.flags = libc::MSG_CMSG_CLOEXEC;
    if options.datagram {
        // A datagram's result is then its whole length, however much the buffer took.
        message.flags |= libc::MSG_TRUNC;
    }
    if options.peek {
        message.flags |= libc::MSG_PEEK;
    }
    let kind_of = |m: &mut Message<B>| {
        let iov = libc::iovec {
            iov_base: m.buf.stable_mut_ptr().cast(),
            iov_len: m.buf.bytes_total().min(MAX_LEN),
        };
        OpKind::RecvMessage {
            flags: m.flags,
            msg: m.link(iov, true),
        }
    };
    // SAFETY: the header, iovec, name and control data are heap memory the message owns, and
    // the iovec covers the buffer's `bytes_total` bytes (the `IoBufMut` promise).
    let (res, mut message) = unsafe { Op::new(source, message, kind_of) }.await;
    let res = res.map(|n| {
        let len = n as usize;
        let room = message.buf.bytes_total();
        // SAFETY: the kernel wrote `min(len, room)` bytes from the start of the buffer.
        unsafe { message.buf.set_init(len.min(room)) };
        let fds = message.control.take_fds();
        let parts = &message.parts;
        let addr = (parts.msg.msg_namelen > 0)
            .then(|| sock_addr_from_raw(&parts.name, parts.msg.msg_namelen));
        Received {
            len,
            truncated: len > room,
            addr,
            fds,
            fds_truncated: parts.msg.msg_flags & libc::MSG_CTRUNC != 0,
        }
    });
    BufResult(res, message.buf)
}

/// Sends `buf`'s initialised bytes as one message, to `to` if given (a datagram socket that is
/// not connected needs it), with `fds` passed to the peer (`SCM_RIGHTS`). Returns the bytes sent.
pub async fn send_msg<S: Source, B: IoBuf>(
    source: &S,
    buf: B,
    to: Option<&SockAddr>,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> BufResult<usize, B> {
    if fds.len() > MAX_FDS {
        return BufResult(Err(too_many_fds(fds.len())), buf);
    }
    let sent_fds = match fds.iter().map(|fd| fd.try_clone_to_owned()).collect() {
        Ok(fds) => fds,
        Err(e) => return BufResult(Err(e), buf),
    };
    let mut message = Message::new(buf, to, control_space(fds.len()));
    message.sent_fds = sent_fds;
    write_rights(&mut message);
    let kind_of = |m: &mut Message<B>| {
        let iov = libc::iovec {
            iov_base: m.buf.stable_ptr() as *mut libc::c_void,
            iov_len: m.buf.bytes_init().min(MAX_LEN),
        };
        OpKind::SendMsg {
            msg: m.link(iov, false),
        }
    };
    // SAFETY: as in `recv_msg`; the kernel only reads through these pointers.
    let (res, message) = unsafe { Op::new(source, message, kind_of) }.await;
    BufResult(res.map(|n| n as usize), message.buf)
}

/// Writes one `SCM_RIGHTS` control message naming the message's own copies of the fds.
fn write_rights<B>(m: &mut Message<B>) {
    if m.sent_fds.is_empty() {
        return;
    }
    let data_len = m.sent_fds.len() * mem::size_of::<RawFd>();
    let base = m.control.words.as_mut_ptr().cast::<u8>();
    // SAFETY: the control buffer holds CMSG_SPACE(data_len) bytes, aligned for cmsghdr; the
    // header goes at its start and the fds right after, inside it.
    unsafe {
        let cmsg = &mut *base.cast::<libc::cmsghdr>();
        cmsg.cmsg_level = libc::SOL_SOCKET;
        cmsg.cmsg_type = libc::SCM_RIGHTS;
        cmsg.cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
        let data = base.add(libc::CMSG_LEN(0) as usize).cast::<RawFd>();
        for (i, fd) in m.sent_fds.iter().enumerate() {
            data.add(i).write_unaligned(fd.as_raw_fd());
        }
    }
}
