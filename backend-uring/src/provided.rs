//! A ring of provided buffers (`IORING_REGISTER_PBUF_RING`): the memory multishot receives
//! write into.
//!
//! The kernel takes a buffer off the ring for every receive completion and names it in the CQE;
//! the buffer is then ours until we give it back, which republishes it at the ring's tail.
//! Giving back may happen on any thread (a socket's last reader may be anywhere), so the tail
//! is advanced under a lock: the ring has exactly one producer at a time, as the kernel
//! requires.

use std::alloc::{self, Layout};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

use io_uring::IoUring;
use parking_lot::Mutex;

/// One entry of the ring, as the kernel lays it out (`struct io_uring_buf`). The `resv` field of
/// entry 0 is the ring's tail, which the kernel reads while we write other entries: entries are
/// only ever written through raw pointers to their fields, never through a reference to a whole
/// entry.
#[repr(C)]
struct RawEntry {
    addr: u64,
    len: u32,
    bid: u16,
    resv: u16,
}

const _: () = assert!(std::mem::size_of::<RawEntry>() == 16);

/// The shape of one buffer ring: its group id, how many buffers (a power of two, as the kernel
/// requires), and their size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) group: u16,
    count: u16,
    pub(crate) size: usize,
}

/// Stream receives: bytes are read in order across buffers, so small buffers serve any read.
pub(crate) const STREAM: Shape = Shape {
    group: 0,
    count: 512,
    size: 4096,
};

/// Stream receives into incrementally consumed buffers (`IOU_PBUF_RING_INC`, 6.12+): each
/// receive fills a large buffer from where the last one into it stopped, whatever the socket,
/// so small messages share a buffer rather than take one each. Same memory as [`STREAM`].
pub(crate) const STREAM_INCREMENTAL: Shape = Shape {
    group: 2,
    count: 64,
    size: 32 * 1024,
};

/// `IOU_PBUF_RING_INC`, the buffer ring flag for incremental consumption.
const IOU_PBUF_RING_INC: u16 = 2;

/// `IORING_CQE_F_BUF_MORE`: the kernel goes on filling the buffer the completion names.
const CQE_F_BUF_MORE: u32 = 1 << 4;

/// Datagram receives: one datagram per buffer, with its `io_uring_recvmsg_out` header and room
/// for any sender address, so every buffer holds the largest UDP datagram (65,527 bytes) whole.
/// Only the pages a datagram touches are ever backed by memory.
pub(crate) const DATAGRAM: Shape = Shape {
    group: 1,
    count: 32,
    size: 65_536 + 4096,
};

/// How stream receives use their buffer ring (a datagram ring is always `Plain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamBuffers {
    #[default]
    /// One completion per 4 KiB buffer.
    Plain,
    /// Receives armed as bundles (`IORING_RECVSEND_BUNDLE`, 6.10+): one completion names every
    /// buffer the receive filled.
    Bundles,
    /// 32 KiB buffers, consumed a receive at a time (`IOU_PBUF_RING_INC`, 6.12+).
    Incremental,
}

/// Whether a kernel of `version` hands bundled buffers out of ring order: stable releases
/// 6.13.11 to 6.14.8 do (liburing issue 1409, fixed in 6.14.9), which would mix up a stream's
/// bytes; bundles are not used there.
pub(crate) fn reorders_bundles(version: (u32, u32, u32)) -> bool {
    ((6, 13, 11)..(6, 14, 9)).contains(&version)
}

/// A ring's buffer rings: one for streams, and one for datagrams where the kernel took it.
pub(crate) struct BufferRings {
    /// The stream ring, whose `mode` is what was asked for where the kernel has it.
    pub(crate) stream: ProvidedBuffers,
    pub(crate) datagram: Option<ProvidedBuffers>,
    /// The kernel refused a bundle: later receives are plain multishot ones.
    bundles_refused: AtomicBool,
}

impl BufferRings {
    /// Registers both rings with `ring`, the stream ring for `wanted` where the kernel has it
    /// (else plain); fails if the stream ring is refused (kernels before 5.19).
    pub(crate) fn register(ring: &IoUring, wanted: StreamBuffers) -> io::Result<Self> {
        let incremental = match wanted {
            StreamBuffers::Incremental => {
                ProvidedBuffers::register(ring, STREAM_INCREMENTAL, StreamBuffers::Incremental).ok()
            }
            _ => None,
        };
        let stream = match incremental {
            Some(buffers) => buffers,
            None => {
                let bundles = wanted == StreamBuffers::Bundles
                    && ring.params().is_feature_recvsend_bundle()
                    && !reorders_bundles(crate::setup::kernel_version());
                let mode = match bundles {
                    true => StreamBuffers::Bundles,
                    false => StreamBuffers::Plain,
                };
                ProvidedBuffers::register(ring, STREAM, mode)?
            }
        };
        Ok(BufferRings {
            stream,
            datagram: ProvidedBuffers::register(ring, DATAGRAM, StreamBuffers::Plain).ok(),
            bundles_refused: AtomicBool::new(false),
        })
    }

    /// How stream receives use their ring.
    pub(crate) fn mode(&self) -> StreamBuffers {
        self.stream.mode
    }

    /// Whether stream receives are armed as bundles.
    pub(crate) fn bundles(&self) -> bool {
        self.mode() == StreamBuffers::Bundles && !self.bundles_refused.load(Ordering::Relaxed)
    }

    /// The kernel refused a bundle (its length cap, before 6.17): arm plain receives from now
    /// on.
    pub(crate) fn refuse_bundles(&self) {
        self.bundles_refused.store(true, Ordering::Relaxed);
    }

    /// Whether `ring`'s kernel takes incrementally consumed buffer rings
    /// (`IOU_PBUF_RING_INC`, 6.12+), by registering a one-buffer ring and removing it.
    pub(crate) fn incremental_supported(ring: &IoUring) -> io::Result<()> {
        let probe = Shape {
            group: 7,
            count: 1,
            size: 4096,
        };
        let buffers = ProvidedBuffers::register(ring, probe, StreamBuffers::Incremental)?;
        ring.submitter().unregister_buf_ring(probe.group)?;
        drop(buffers);
        Ok(())
    }

    /// Unregisters both rings from `ring` (when nothing in the kernel can write into them).
    pub(crate) fn unregister(&self, ring: &IoUring) {
        for buffers in std::iter::once(&self.stream).chain(&self.datagram) {
            let _ = ring.submitter().unregister_buf_ring(buffers.shape.group);
        }
    }
}

/// The ring entries and the buffer memory, registered with one io_uring.
///
/// # Invariant
/// `entries` and `memory` are allocations of `entries_layout` and `memory_layout`, alive until
/// drop; the kernel reads `entries` and writes buffers of `memory` only while the io_uring they
/// were registered with is alive, so this must outlive that ring (or be leaked).
pub(crate) struct ProvidedBuffers {
    pub(crate) shape: Shape,
    entries: *mut RawEntry,
    memory: *mut u8,
    /// The producer's side, under its lock.
    producer: Mutex<Producer>,
    /// How receives use it: with bundles a completion may fill several buffers; incremental
    /// (registered with `IOU_PBUF_RING_INC`), the kernel consumes each buffer a receive at a
    /// time.
    pub(crate) mode: StreamBuffers,
    /// Multishot receive was refused by the kernel (`EINVAL`): do not arm it again.
    refused: AtomicBool,
}

/// How much of an incrementally consumed buffer was filled and is still held.
#[derive(Debug, Clone, Copy, Default)]
struct Share {
    /// Where the kernel's next receive into the buffer starts.
    next: usize,
    /// Completions into the buffer whose bytes are not all read yet.
    held: u32,
    /// The kernel moved past the buffer (a completion without `F_BUF_MORE`).
    kernel_done: bool,
}

/// What the single producer keeps: the tail published so far, and the order buffers were
/// published in (a bundle completion names its first buffer only, and the rest are those
/// published after it).
///
/// `published` remembers the last `2 * count` publications. A bundle's buffers are not given
/// back before its completion is handled, and completions come in the order the kernel took
/// buffers, but for a few that the kernel posts at the end of a batch; so fewer than `count`
/// buffers can be published again between a bundle's taking and its completion, and its
/// entries of `published` are still there.
struct Producer {
    tail: u16,
    /// Buffer id by publication index, modulo `2 * count` (kept for a bundle ring only).
    published: Box<[u16]>,
    /// Publication index by buffer id (kept for a bundle ring only).
    published_at: Box<[u16]>,
    /// For an incrementally consumed ring, each buffer's share (empty otherwise).
    shares: Box<[Share]>,
}

// SAFETY: the raw pointers are to heap allocations owned by this value (its invariant); entries
// are written only under the `producer` lock and buffers are only read by the one holder of their
// id, so sharing across threads is sound.
unsafe impl Send for ProvidedBuffers {}
// SAFETY: as for `Send`: every mutation goes through the `producer` lock.
unsafe impl Sync for ProvidedBuffers {}

impl Shape {
    fn entries_layout(self) -> Layout {
        Layout::from_size_align(
            usize::from(self.count) * std::mem::size_of::<RawEntry>(),
            4096,
        )
        .expect("valid layout")
    }

    fn memory_layout(self) -> Layout {
        Layout::from_size_align(usize::from(self.count) * self.size, 4096).expect("valid layout")
    }
}

impl ProvidedBuffers {
    /// Allocates the buffers and registers them with `ring` as group `shape.group` for `mode`,
    /// every buffer given to the kernel. Fails on kernels before 5.19 (and, incremental, before
    /// 6.12).
    fn register(ring: &IoUring, shape: Shape, mode: StreamBuffers) -> io::Result<Self> {
        let flags = match mode {
            StreamBuffers::Incremental => IOU_PBUF_RING_INC,
            _ => 0,
        };
        // SAFETY: both layouts have a non-zero size.
        let (entries, memory) = unsafe {
            (
                alloc::alloc_zeroed(shape.entries_layout()).cast::<RawEntry>(),
                alloc::alloc_zeroed(shape.memory_layout()),
            )
        };
        if entries.is_null() || memory.is_null() {
            // SAFETY: each pointer, if not null, came from `alloc_zeroed` with that layout.
            unsafe {
                if !entries.is_null() {
                    alloc::dealloc(entries.cast(), shape.entries_layout());
                }
                if !memory.is_null() {
                    alloc::dealloc(memory, shape.memory_layout());
                }
            }
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        let buffers = ProvidedBuffers {
            shape,
            entries,
            memory,
            producer: Mutex::new(Producer {
                tail: 0,
                // Only a bundle's completion needs the publication order.
                published: match mode {
                    StreamBuffers::Bundles => vec![0; 2 * usize::from(shape.count)].into(),
                    _ => Box::default(),
                },
                published_at: match mode {
                    StreamBuffers::Bundles => vec![0; usize::from(shape.count)].into(),
                    _ => Box::default(),
                },
                shares: match mode {
                    StreamBuffers::Incremental => {
                        vec![Share::default(); usize::from(shape.count)].into_boxed_slice()
                    }
                    _ => Box::default(),
                },
            }),
            mode,
            refused: AtomicBool::new(false),
        };
        // SAFETY: `entries` holds `shape.count` page-aligned entries and lives as long as
        // `buffers`, which the driver keeps alive for as long as the ring (the type's invariant).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                entries as u64,
                shape.count,
                shape.group,
                flags,
            )?;
        }
        {
            let mut producer = buffers.producer.lock();
            for bid in 0..shape.count {
                buffers.publish(&mut producer, bid);
            }
        }
        Ok(buffers)
    }

    /// The `len` bytes at `offset` of buffer `bid` that a completion said were received.
    ///
    /// # Safety
    /// The caller must hold that part of `bid` (a completion named it, as [`filled_by`] told,
    /// and it was not released since).
    ///
    /// [`filled_by`]: ProvidedBuffers::filled_by
    pub(crate) unsafe fn filled(&self, bid: u16, offset: usize, len: usize) -> &[u8] {
        let Shape { count, size, .. } = self.shape;
        debug_assert!(bid < count && offset + len <= size);
        // SAFETY: `bid` is below `count` (the kernel only names buffers of the ring) and
        // `offset + len` is at most `size` (`filled_by` checked it), so the range lies inside
        // `memory`; the kernel wrote those bytes and does not touch them again until the
        // buffer is given back (the caller's promise).
        unsafe {
            std::slice::from_raw_parts(self.memory.add(usize::from(bid) * size + offset), len)
        }
    }

    /// Calls `each` with the parts of buffers a receive completion of `len` bytes (with CQE
    /// `flags`) filled, first in `bid`: as (buffer, offset, bytes), in order. One buffer from
    /// its start; or for a bundle the buffers published after `bid` (the kernel takes a
    /// bundle's buffers in ring order from `bid`, and fills every one but the last); or for an
    /// incrementally consumed ring, `bid` from where its last completion stopped. Each part is
    /// held until [`release`]d. `false` (and nothing held) if the completion cannot be this
    /// ring's: it would run past the buffer.
    ///
    /// A completion of this ring must have named `bid` with result `len`, and none of the
    /// buffers it filled may have been given back since; otherwise the buffers named are wrong
    /// (but are the ring's, so reading them is still sound).
    ///
    /// [`release`]: ProvidedBuffers::release
    pub(crate) fn filled_by(
        &self,
        bid: u16,
        len: usize,
        flags: u32,
        mut each: impl FnMut(u16, usize, usize),
    ) -> bool {
        let Shape { count, size, .. } = self.shape;
        if bid >= count {
            return false;
        }
        let n = len.div_ceil(size);
        let incremental = self.mode == StreamBuffers::Incremental;
        if n <= 1 && !incremental {
            each(bid, 0, len);
            return true;
        }
        // More than one buffer only from a bundle, and never more than the ring has.
        if n > 1 && !(self.mode == StreamBuffers::Bundles && n <= usize::from(count)) {
            return false;
        }
        let mut producer = self.producer.lock();
        if incremental {
            let share = &mut producer.shares[usize::from(bid)];
            let start = share.next;
            if start + len > size {
                return false;
            }
            share.next += len;
            share.held += 1;
            share.kernel_done |= flags & CQE_F_BUF_MORE == 0;
            each(bid, start, len);
            return true;
        }
        let first = producer.published_at[usize::from(bid)];
        let mask = producer.published.len() - 1;
        for i in 0..n {
            let at = usize::from(first.wrapping_add(i as u16)) & mask;
            each(producer.published[at], 0, (len - i * size).min(size));
        }
        true
    }

    /// A part of buffer `bid` that [`filled_by`] named was read: the buffer goes back to the
    /// kernel once nothing in it is held (for an incrementally consumed buffer: no part, and
    /// the kernel moved past it). The caller must not read that part afterwards.
    ///
    /// [`filled_by`]: ProvidedBuffers::filled_by
    pub(crate) fn release(&self, bid: u16) {
        let mut producer = self.producer.lock();
        if let Some(share) = producer.shares.get_mut(usize::from(bid)) {
            share.held -= 1;
            if !(share.kernel_done && share.held == 0) {
                return;
            }
            *share = Share::default();
        }
        self.publish(&mut producer, bid);
    }

    /// Gives buffer `bid`, whole, to the kernel.
    fn publish(&self, producer: &mut Producer, bid: u16) {
        let Shape { count, size, .. } = self.shape;
        let mask = count - 1;
        let tail = producer.tail;
        // SAFETY: the index is masked into the ring; only the holder of the lock writes entries
        // (the single producer), the kernel reads an entry only once the tail covers it, and
        // the fields are written through raw pointers (never a reference to the entry, whose
        // neighbour field may be the tail the kernel reads).
        unsafe {
            let entry = self.entries.add(usize::from(tail & mask));
            let addr = self.memory.add(usize::from(bid) * size) as u64;
            std::ptr::addr_of_mut!((*entry).addr).write(addr);
            std::ptr::addr_of_mut!((*entry).len).write(size as u32);
            std::ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        if self.mode == StreamBuffers::Bundles {
            let at = usize::from(tail) & (producer.published.len() - 1);
            producer.published[at] = bid;
            producer.published_at[usize::from(bid)] = tail;
        }
        producer.tail = tail.wrapping_add(1);
        // SAFETY: the tail is entry 0's `resv` field, aligned for a u16 and only accessed
        // atomically; the kernel reads it with acquire ordering, so the entry written above is
        // visible before the new tail.
        let tail_field =
            unsafe { &*std::ptr::addr_of_mut!((*self.entries).resv).cast::<AtomicU16>() };
        tail_field.store(producer.tail, Ordering::Release);
    }

    /// Whether multishot receives may be armed on this ring.
    pub(crate) fn multishot_allowed(&self) -> bool {
        !self.refused.load(Ordering::Relaxed)
    }

    /// The kernel refused a multishot receive: every read uses one-shot receives from now on.
    pub(crate) fn refuse_multishot(&self) {
        self.refused.store(true, Ordering::Relaxed);
    }
}

impl Drop for ProvidedBuffers {
    fn drop(&mut self) {
        // SAFETY: both came from `alloc_zeroed` with these layouts (the invariant), and the ring
        // that used them is gone.
        unsafe {
            alloc::dealloc(self.entries.cast(), self.shape.entries_layout());
            alloc::dealloc(self.memory, self.shape.memory_layout());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The buffers a completion names, as (buffer, offset, bytes).
    fn parts(
        buffers: &ProvidedBuffers,
        bid: u16,
        len: usize,
        flags: u32,
    ) -> Option<Vec<(u16, usize, usize)>> {
        let mut named = Vec::new();
        let whole = buffers.filled_by(bid, len, flags, |b, offset, n| named.push((b, offset, n)));
        whole.then_some(named)
    }

    #[test]
    fn a_bundle_names_the_buffers_published_after_its_first() {
        let Ok(ring) = IoUring::new(8) else {
            return eprintln!("skipped: io_uring unavailable");
        };
        let Ok(mut buffers) = ProvidedBuffers::register(&ring, STREAM, StreamBuffers::Bundles)
        else {
            return eprintln!("skipped: no buffer rings");
        };
        // Plain: a completion cannot fill more than one buffer.
        buffers.mode = StreamBuffers::Plain;
        assert_eq!(parts(&buffers, 511, 3 * 4096, 0), None);
        buffers.mode = StreamBuffers::Bundles;
        // Published 0..=511 in order; 2 and then 0 are given back, so they follow 511.
        buffers.release(2);
        buffers.release(0);
        assert_eq!(
            parts(&buffers, 511, 2 * 4096 + 100, 0),
            Some(vec![(511, 0, 4096), (2, 0, 4096), (0, 0, 100)])
        );
        assert_eq!(parts(&buffers, 9, 100, 0), Some(vec![(9, 0, 100)]));
        assert_eq!(parts(&buffers, 512, 100, 0), None, "no such buffer");
        // Nothing was armed: no receive can write into the buffers once they are removed.
        let _ = ring.submitter().unregister_buf_ring(buffers.shape.group);
    }

    #[test]
    fn an_incremental_buffer_goes_back_once_the_kernel_and_every_reader_are_done() {
        let Ok(ring) = IoUring::new(8) else {
            return eprintln!("skipped: io_uring unavailable");
        };
        let Ok(buffers) =
            ProvidedBuffers::register(&ring, STREAM_INCREMENTAL, StreamBuffers::Incremental)
        else {
            return eprintln!("skipped: no incremental buffer rings");
        };
        let tail = |b: &ProvidedBuffers| b.producer.lock().tail;
        let published = tail(&buffers);
        assert_eq!(
            parts(&buffers, 5, 100, CQE_F_BUF_MORE),
            Some(vec![(5, 0, 100)])
        );
        assert_eq!(
            parts(&buffers, 5, 50, CQE_F_BUF_MORE),
            Some(vec![(5, 100, 50)])
        );
        buffers.release(5);
        buffers.release(5);
        assert_eq!(
            tail(&buffers),
            published,
            "given back while the kernel fills it"
        );
        assert_eq!(parts(&buffers, 5, 30, 0), Some(vec![(5, 150, 30)]));
        assert_eq!(tail(&buffers), published, "given back with a part unread");
        buffers.release(5);
        assert_eq!(
            tail(&buffers),
            published.wrapping_add(1),
            "not given back when done"
        );
        // Given back whole: the kernel starts it again from its beginning.
        assert_eq!(
            parts(&buffers, 5, 10, CQE_F_BUF_MORE),
            Some(vec![(5, 0, 10)])
        );
        assert_eq!(
            parts(&buffers, 6, 32 * 1024 + 1, 0),
            None,
            "past the buffer's end"
        );
        let _ = ring
            .submitter()
            .unregister_buf_ring(STREAM_INCREMENTAL.group);
    }
}
