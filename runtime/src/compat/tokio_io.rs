//! tokio's `AsyncRead` and `AsyncWrite` for [`AsyncIo`].

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use ::net::{ReadStream, WriteStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::AsyncIo;

impl<T: ReadStream + Unpin> AsyncRead for AsyncIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // SAFETY: `PollIo::poll_read` writes only initialised bytes, and never de-initialises.
        #[allow(unsafe_code)]
        let unfilled = unsafe { buf.unfilled_mut() };
        let n = ready!(this.io.poll_read(cx, unfilled))?;
        // SAFETY: it wrote the first `n` bytes of the unfilled part.
        #[allow(unsafe_code)]
        unsafe {
            buf.assume_init(n)
        };
        buf.advance(n);
        Poll::Ready(Ok(()))
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

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().io.poll_shutdown(cx)
    }
}
