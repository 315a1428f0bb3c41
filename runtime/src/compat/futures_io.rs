//! futures-io's `AsyncRead` and `AsyncWrite` for [`AsyncIo`].

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::net::{ReadStream, WriteStream};
use futures_io::{AsyncRead, AsyncWrite};

use super::AsyncIo;

impl<T: ReadStream + Unpin> AsyncRead for AsyncIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        // SAFETY: `MaybeUninit<u8>` has `u8`'s layout, and `PollIo::poll_read` writes only
        // initialised bytes, so `buf` stays initialised.
        #[allow(unsafe_code)]
        let dst = unsafe {
            std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<MaybeUninit<u8>>(), len)
        };
        self.get_mut().io.poll_read(cx, dst)
    }
}

impl<T: WriteStream + Unpin> AsyncWrite for AsyncIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io.poll_write(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().io.poll_write(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io.poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io.poll_shutdown(cx)
    }
}
