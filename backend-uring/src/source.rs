//! A socket fd used through the ring driver.

use std::any::Any;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll};

use io_uring::{opcode, types};
use runtime_core::{OpCode, OpKind, Source};

use crate::driver::{with_current, IGNORED_USER_DATA};
use crate::sqe;

/// An fd whose operations go through the ring of the reactor that created it.
#[derive(Debug)]
pub struct RingSource {
    /// `None` only while dropping.
    fd: Option<OwnedFd>,
    /// The id of the owning reactor's ring.
    owner: usize,
}

/// The slab key of an operation once submitted.
pub type RingOpState = Option<usize>;

fn not_on_owner() -> io::Error {
    io::Error::other(
        "io_uring operation polled on a thread other than the reactor that owns the socket",
    )
}

impl Source for RingSource {
    type OpState = RingOpState;

    fn new(fd: OwnedFd) -> io::Result<Self> {
        let owner = with_current(|ring| ring.id)
            .ok_or_else(|| io::Error::other("no io_uring runtime is running on this thread"))?;
        Ok(RingSource {
            fd: Some(fd),
            owner,
        })
    }

    fn nonblocking() -> io::Result<bool> {
        // io_uring returns EAGAIN instead of waiting on an O_NONBLOCK socket.
        Ok(false)
    }

    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    fn poll_op(
        &self,
        state: &mut RingOpState,
        code: &OpCode,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<u32>> {
        let polled = with_current(|ring| {
            if ring.id != self.owner {
                return Poll::Ready(Err(not_on_owner()));
            }
            let Some(key) = *state else {
                let key = ring.ops.borrow_mut().insert(cx.waker().clone());
                let entry = sqe::build(self.as_raw_fd(), code.kind()).user_data(key as u64);
                ring.push(entry);
                *state = Some(key);
                return Poll::Pending;
            };
            match ring.ops.borrow_mut().poll(key, cx.waker()) {
                Some(res) if res < 0 => Poll::Ready(Err(io::Error::from_raw_os_error(-res))),
                Some(res) => Poll::Ready(Ok(res as u32)),
                None => Poll::Pending,
            }
        });
        polled.unwrap_or_else(|| Poll::Ready(Err(not_on_owner())))
    }

    fn drop_op(&self, state: &mut RingOpState, code: &OpCode, keep_alive: Box<dyn Any>) {
        let Some(key) = state.take() else {
            return;
        };
        let on_owner = with_current(|ring| ring.id == self.owner) == Some(true);
        if !on_owner {
            // Off the owning reactor we cannot reach the table that would keep the memory until
            // the kernel lets go of it: leak it rather than free it under the kernel.
            std::mem::forget(keep_alive);
            return;
        }
        with_current(|ring| {
            let accepts = matches!(code.kind(), OpKind::Accept { .. });
            if ring.ops.borrow_mut().abandon(key, keep_alive, accepts) {
                ring.push(
                    opcode::AsyncCancel::new(key as u64)
                        .build()
                        .user_data(IGNORED_USER_DATA),
                );
            }
        });
    }
}

impl Drop for RingSource {
    fn drop(&mut self) {
        let Some(fd) = self.fd.take() else { return };
        let owner = self.owner;
        let fd = match with_current(|ring| ring.id == owner) {
            Some(true) => fd.into_raw_fd(),
            _ => return drop(fd),
        };
        // Close through the ring: batched into the next submission instead of a syscall now.
        with_current(|ring| {
            ring.push(
                opcode::Close::new(types::Fd(fd))
                    .build()
                    .user_data(IGNORED_USER_DATA),
            )
        });
    }
}
