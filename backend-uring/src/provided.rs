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

/// The buffer group id of the ring (one ring per io_uring).
pub(crate) const BUFFER_GROUP: u16 = 0;
/// Buffers in the ring (a power of two, as the kernel requires).
const BUFFERS: u16 = 512;
/// Bytes per buffer.
pub(crate) const BUFFER_SIZE: usize = 4096;

/// The ring entries and the buffer memory, registered with one io_uring.
///
/// # Invariant
/// `entries` and `memory` are allocations of `entries_layout` and `memory_layout`, alive until
/// drop; the kernel reads `entries` and writes buffers of `memory` only while the io_uring they
/// were registered with is alive, so this must outlive that ring (or be leaked).
pub(crate) struct ProvidedBuffers {
    entries: *mut RawEntry,
    memory: *mut u8,
    /// The tail the producer has published so far, under the producer lock.
    tail: Mutex<u16>,
    /// Multishot receive was refused by the kernel (`EINVAL`): do not arm it again.
    refused: AtomicBool,
}

// SAFETY: the raw pointers are to heap allocations owned by this value (its invariant); entries
// are written only under the `tail` lock and buffers are only read by the one holder of their
// id, so sharing across threads is sound.
unsafe impl Send for ProvidedBuffers {}
// SAFETY: as for `Send`: every mutation goes through the `tail` lock.
unsafe impl Sync for ProvidedBuffers {}

fn entries_layout() -> Layout {
    Layout::from_size_align(usize::from(BUFFERS) * std::mem::size_of::<RawEntry>(), 4096)
        .expect("valid layout")
}

fn memory_layout() -> Layout {
    Layout::from_size_align(usize::from(BUFFERS) * BUFFER_SIZE, 64).expect("valid layout")
}

impl ProvidedBuffers {
    /// Allocates the buffers and registers them with `ring` as group [`BUFFER_GROUP`], every
    /// buffer given to the kernel. Fails on kernels before 5.19.
    pub(crate) fn register(ring: &IoUring) -> io::Result<Self> {
        // SAFETY: both layouts have a non-zero size.
        let (entries, memory) = unsafe {
            (
                alloc::alloc_zeroed(entries_layout()).cast::<RawEntry>(),
                alloc::alloc_zeroed(memory_layout()),
            )
        };
        if entries.is_null() || memory.is_null() {
            // SAFETY: each pointer, if not null, came from `alloc_zeroed` with that layout.
            unsafe {
                if !entries.is_null() {
                    alloc::dealloc(entries.cast(), entries_layout());
                }
                if !memory.is_null() {
                    alloc::dealloc(memory, memory_layout());
                }
            }
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        let buffers = ProvidedBuffers {
            entries,
            memory,
            tail: Mutex::new(0),
            refused: AtomicBool::new(false),
        };
        // SAFETY: `entries` holds `BUFFERS` page-aligned entries and lives as long as `buffers`,
        // which the driver keeps alive for as long as the ring (the type's invariant).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                entries as u64,
                BUFFERS,
                BUFFER_GROUP,
                0,
            )?;
        }
        for bid in 0..BUFFERS {
            buffers.give_back(bid);
        }
        Ok(buffers)
    }

    /// The bytes of buffer `bid` that a completion said were received.
    ///
    /// # Safety
    /// The caller must hold `bid` (a CQE named it and it was not given back since), and `len`
    /// must be at most that CQE's result.
    pub(crate) unsafe fn filled(&self, bid: u16, len: usize) -> &[u8] {
        debug_assert!(bid < BUFFERS && len <= BUFFER_SIZE);
        // SAFETY: `bid` is below `BUFFERS` (the kernel only names buffers of the ring), so the
        // range lies inside `memory`; the kernel wrote `len` bytes there and does not touch the
        // buffer again until it is given back (the caller's promise).
        unsafe { std::slice::from_raw_parts(self.memory.add(usize::from(bid) * BUFFER_SIZE), len) }
    }

    /// Returns buffer `bid` to the kernel. The caller must not read it afterwards.
    pub(crate) fn give_back(&self, bid: u16) {
        let mut tail = self.tail.lock();
        let mask = BUFFERS - 1;
        // SAFETY: the index is masked into the ring; only the holder of the lock writes entries
        // (the single producer), the kernel reads an entry only once the tail covers it, and
        // the fields are written through raw pointers (never a reference to the entry, whose
        // neighbour field may be the tail the kernel reads).
        unsafe {
            let entry = self.entries.add(usize::from(*tail & mask));
            let addr = self.memory.add(usize::from(bid) * BUFFER_SIZE) as u64;
            std::ptr::addr_of_mut!((*entry).addr).write(addr);
            std::ptr::addr_of_mut!((*entry).len).write(BUFFER_SIZE as u32);
            std::ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        *tail = tail.wrapping_add(1);
        // SAFETY: the tail is entry 0's `resv` field, aligned for a u16 and only accessed
        // atomically; the kernel reads it with acquire ordering, so the entry written above is
        // visible before the new tail.
        let tail_field =
            unsafe { &*std::ptr::addr_of_mut!((*self.entries).resv).cast::<AtomicU16>() };
        tail_field.store(*tail, Ordering::Release);
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
            alloc::dealloc(self.entries.cast(), entries_layout());
            alloc::dealloc(self.memory, memory_layout());
        }
    }
}
