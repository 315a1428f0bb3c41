//! Owned buffers for completion-based I/O.
//!
//! An operation takes its buffer by value and gives it back in a [`BufResult`], on success and on
//! error alike. While the operation is in flight the kernel may write into the buffer's memory, so
//! that memory must not move when the buffer value moves: this is the promise the two `unsafe`
//! traits below ask for.

use std::ops::{Bound, RangeBounds};

/// The result of an I/O operation together with the buffer it was given:
/// `let BufResult(res, buf) = stream.read(buf).await;`
///
/// Where the buffer is not needed after an error, [`into_result`](BufResult::into_result) gives
/// a plain `io::Result` for `?`:
///
/// ```
/// # use runtime_core::BufResult;
/// # fn demo(read: BufResult<usize, Vec<u8>>) -> std::io::Result<()> {
/// let (n, buf) = read.into_result()?;
/// println!("{:?}", &buf[..n]);
/// # Ok(())
/// # }
/// ```
#[must_use = "the buffer comes back in the result; dropping it loses the data"]
#[derive(Debug)]
pub struct BufResult<T, B>(pub std::io::Result<T>, pub B);

impl<T, B> BufResult<T, B> {
    /// Maps the success value, keeping the buffer.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> BufResult<U, B> {
        BufResult(self.0.map(f), self.1)
    }

    /// Maps the success value with a function that may fail, keeping the buffer.
    pub fn and_then<U>(self, f: impl FnOnce(T) -> std::io::Result<U>) -> BufResult<U, B> {
        BufResult(self.0.and_then(f), self.1)
    }

    /// Maps the error, keeping the buffer (to add context, say).
    pub fn map_err(self, f: impl FnOnce(std::io::Error) -> std::io::Error) -> BufResult<T, B> {
        BufResult(self.0.map_err(f), self.1)
    }

    /// Maps the buffer, keeping the result (a `Slice` back to its inner buffer, say).
    pub fn map_buffer<C>(self, f: impl FnOnce(B) -> C) -> BufResult<T, C> {
        BufResult(self.0, f(self.1))
    }

    /// Whether the operation succeeded.
    pub fn is_ok(&self) -> bool {
        self.0.is_ok()
    }

    /// The result and the buffer, apart.
    pub fn into_parts(self) -> (std::io::Result<T>, B) {
        (self.0, self.1)
    }

    /// The value and the buffer, or the error (the buffer is dropped with it).
    pub fn into_result(self) -> std::io::Result<(T, B)> {
        self.0.map(|value| (value, self.1))
    }

    /// The value and the buffer; panics with the error if the operation failed.
    #[track_caller]
    pub fn unwrap(self) -> (T, B) {
        match self.0 {
            Ok(value) => (value, self.1),
            Err(e) => panic!("called `BufResult::unwrap()` on an error: {e}"),
        }
    }

    /// The value and the buffer; panics with `msg` and the error if the operation failed.
    #[track_caller]
    pub fn expect(self, msg: &str) -> (T, B) {
        match self.0 {
            Ok(value) => (value, self.1),
            Err(e) => panic!("{msg}: {e}"),
        }
    }
}

impl<T, B> From<BufResult<T, B>> for (std::io::Result<T>, B) {
    fn from(r: BufResult<T, B>) -> Self {
        r.into_parts()
    }
}

/// A buffer that can be read from (the source of a write).
///
/// # Safety
/// `stable_ptr()` must point to `bytes_init()` initialised bytes, and that memory must stay valid
/// and at the same address while the value is moved around, until it is dropped.
pub unsafe trait IoBuf: Unpin + Send + 'static {
    /// Start of the buffer's memory.
    fn stable_ptr(&self) -> *const u8;
    /// Number of initialised bytes: what a write sends.
    fn bytes_init(&self) -> usize;
    /// Total capacity of the buffer.
    fn bytes_total(&self) -> usize;

    /// A view of `range` of this buffer (relative to its start); the range is clamped to
    /// `bytes_total()`, so a view is never larger than its buffer.
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        let total = self.bytes_total();
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n.saturating_add(1),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => total,
        };
        let end = end.min(total);
        Slice {
            buf: self,
            begin: begin.min(end),
            end,
        }
    }
}

/// A buffer that can be written into (the destination of a read).
///
/// # Safety
/// As for [`IoBuf`], plus: `stable_mut_ptr()` must be valid for writes of `bytes_total()` bytes.
pub unsafe trait IoBufMut: IoBuf {
    /// Start of the buffer's writable memory.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Records that the first `pos` bytes are now initialised. Never shrinks the buffer.
    ///
    /// # Safety
    /// The first `pos` bytes must have been written, and `pos <= bytes_total()`.
    unsafe fn set_init(&mut self, pos: usize);
}

// SAFETY: a Vec's heap allocation does not move when the Vec value moves; `len` bytes are
// initialised and `capacity` bytes are allocated.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for `IoBuf for Vec<u8>`; the whole capacity is writable.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        if self.len() < pos {
            // SAFETY: the caller promises the first `pos <= capacity` bytes are initialised.
            unsafe { self.set_len(pos) };
        }
    }
}

// SAFETY: a boxed slice's allocation does not move with the box; all of it is initialised.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for `IoBuf for Box<[u8]>`; the memory is uniquely owned and writable.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _pos: usize) {}
}

// SAFETY: static memory never moves and is never freed.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: static memory never moves and is never freed.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

/// A window `[begin, end)` onto an owned buffer, itself an owned buffer.
///
/// Reading into a slice fills the window and marks the inner buffer initialised up to the end of
/// what was read; writing from a slice sends the initialised part of the window.
#[derive(Debug)]
pub struct Slice<B> {
    buf: B,
    begin: usize,
    end: usize,
}

impl<B> Slice<B> {
    /// Offset of the window's first byte in the inner buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }
    /// Offset one past the window's last byte in the inner buffer.
    pub fn end(&self) -> usize {
        self.end
    }
    /// The inner buffer.
    pub fn get_ref(&self) -> &B {
        &self.buf
    }
    /// Gives the inner buffer back.
    pub fn into_inner(self) -> B {
        self.buf
    }
}

// SAFETY: the window lies inside the inner buffer (`begin <= end <= bytes_total`, enforced by
// `IoBuf::slice`), whose memory is stable by the inner buffer's own guarantee.
unsafe impl<B: IoBuf> IoBuf for Slice<B> {
    fn stable_ptr(&self) -> *const u8 {
        self.buf.stable_ptr().wrapping_add(self.begin)
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init().clamp(self.begin, self.end) - self.begin
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: as above; writes stay within the window, which lies inside the inner buffer.
unsafe impl<B: IoBufMut> IoBufMut for Slice<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buf.stable_mut_ptr().wrapping_add(self.begin)
    }
    /// Marks the window's first `pos` bytes initialised in the inner buffer. If the inner buffer's
    /// initialised part ends before the window begins, the gap between them is zeroed first, so
    /// the inner buffer only ever grows over bytes that were written.
    unsafe fn set_init(&mut self, pos: usize) {
        if pos == 0 {
            return;
        }
        let init = self.buf.bytes_init();
        if init < self.begin {
            // SAFETY: `init < begin <= bytes_total`, so the gap lies inside the inner buffer's
            // writable memory (`IoBufMut`'s promise), and nothing else refers to it.
            unsafe {
                self.buf
                    .stable_mut_ptr()
                    .add(init)
                    .write_bytes(0, self.begin - init)
            };
        }
        // SAFETY: the inner buffer's bytes up to `begin` were initialised (before, or just above),
        // and the caller wrote the window's first `pos` bytes, `begin + pos <= end <= total`.
        unsafe { self.buf.set_init(self.begin + pos) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_is_clamped_to_the_buffer() {
        let v = Vec::with_capacity(16);
        let s = v.slice(4..100);
        assert_eq!((s.begin(), s.end()), (4, 16));
        assert_eq!(s.bytes_total(), 12);
        let s = s.into_inner().slice(20..);
        assert_eq!(s.bytes_total(), 0);
    }

    #[test]
    fn slice_init_counts_only_the_window() {
        let v = b"hello world".to_vec();
        let s = v.slice(6..);
        assert_eq!(s.bytes_init(), 5);
        // SAFETY: reading the five initialised bytes of the window.
        let got = unsafe { std::slice::from_raw_parts(s.stable_ptr(), s.bytes_init()) };
        assert_eq!(got, b"world");
    }

    #[test]
    fn set_init_through_a_slice_grows_the_vec() {
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(b"ab");
        let mut s = v.slice(2..);
        // SAFETY: writing 3 bytes into the window's writable memory, then marking them.
        unsafe {
            std::ptr::copy_nonoverlapping(b"cde".as_ptr(), s.stable_mut_ptr(), 3);
            s.set_init(3);
        }
        assert_eq!(s.into_inner(), b"abcde");
    }

    #[test]
    fn buf_result_helpers_keep_or_give_the_buffer() {
        let ok = || BufResult(Ok(3usize), vec![1u8, 2, 3]);
        let err = || BufResult::<usize, _>(Err(std::io::ErrorKind::Other.into()), vec![9u8]);
        assert_eq!(ok().map(|n| n * 2).unwrap(), (6, vec![1, 2, 3]));
        assert_eq!(
            ok().and_then(|n| Ok(n + 1)).expect("ok"),
            (4, vec![1, 2, 3])
        );
        let failed = ok().and_then(|_| Err::<(), _>(std::io::ErrorKind::InvalidData.into()));
        assert!(!failed.is_ok());
        assert_eq!(
            failed.1,
            vec![1, 2, 3],
            "the buffer survives a failed and_then"
        );
        assert_eq!(ok().map_buffer(|b| b.len()).unwrap(), (3, 3));
        let (res, buf) = err().into_parts();
        assert!(res.is_err() && buf == vec![9]);
        assert!(err().into_result().is_err());
        assert_eq!(ok().into_result().expect("ok"), (3, vec![1, 2, 3]));
        let named = err().map_err(|e| std::io::Error::new(e.kind(), "with context"));
        assert_eq!(named.0.expect_err("err").to_string(), "with context");
        let (res, buf): (std::io::Result<usize>, Vec<u8>) = ok().into();
        assert_eq!((res.expect("ok"), buf), (3, vec![1, 2, 3]));
    }

    #[test]
    fn set_init_past_a_gap_zeroes_the_gap() {
        let mut v: Vec<u8> = Vec::with_capacity(64);
        // Stale contents where the gap will be: what a reused allocation would hold.
        // SAFETY: writing inside the capacity, without marking it initialised.
        unsafe { v.as_mut_ptr().write_bytes(0xEE, 64) };
        let mut s = v.slice(32..);
        // SAFETY: writing 2 bytes at the window's start, then marking them.
        unsafe {
            std::ptr::copy_nonoverlapping(b"hi".as_ptr(), s.stable_mut_ptr(), 2);
            s.set_init(2);
        }
        let v = s.into_inner();
        assert_eq!(v.len(), 34);
        assert!(v[..32].iter().all(|&b| b == 0), "the gap holds stale bytes");
        assert_eq!(&v[32..], b"hi");
    }

    #[test]
    fn set_init_of_nothing_leaves_the_buffer_alone() {
        let v: Vec<u8> = Vec::with_capacity(64);
        let mut s = v.slice(32..);
        // SAFETY: zero bytes were written.
        unsafe { s.set_init(0) };
        assert!(s.into_inner().is_empty());
    }

    /// Random ranges over random buffers: a slice never reaches outside its buffer, and its
    /// initialised part is exactly the overlap of the window with the buffer's initialised part.
    #[test]
    fn property_slices_stay_inside_their_buffer() {
        let mut x: u64 = 0x534c_4943;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as usize
        };
        for _ in 0..100_000 {
            let cap = next() % 64;
            let mut v = Vec::with_capacity(cap);
            v.resize(next() % (cap + 1), 0u8);
            let (init, total) = (v.len(), v.capacity());
            let (a, b) = (next() % 80, next() % 80);
            let s = match next() % 4 {
                0 => v.slice(a..b),
                1 => v.slice(a..),
                2 => v.slice(..b),
                _ => v.slice(a..=b),
            };
            assert!(s.begin() <= s.end() && s.end() <= total);
            assert_eq!(s.bytes_total(), s.end() - s.begin());
            let expected_init = init.clamp(s.begin(), s.end()) - s.begin();
            assert_eq!(s.bytes_init(), expected_init);
            assert_eq!(
                s.stable_ptr() as usize - s.get_ref().as_ptr() as usize,
                s.begin()
            );
        }
    }
}
