//! Direct descriptors: a ring's table of registered files, and the slot a socket takes in it.
//!
//! An SQE that names its socket by fd makes the kernel look the fd up and count a reference on
//! its file for the request (`fget`, `fput`), on a `struct file` that a server with many
//! connections finds cold. An SQE that names a slot of the ring's registered file table
//! (`IOSQE_FIXED_FILE`) skips both. The socket keeps its fd for everything else (`AsRawFd`,
//! socket options, direct syscalls from other threads, operations handed off to the reactor),
//! so a slot is an extra name, used only by the owning reactor's own SQEs.
//!
//! # How a slot is kept from naming the wrong socket
//!
//! The table holds a reference to each file in it, so a slot outlives the socket's fd unless
//! it is emptied, and a slot given to a new socket while an SQE still names it for the old one
//! would send the old socket's bytes to the new peer. So:
//! - A socket gets a slot after [`REGISTER_AFTER`] operations on its reactor (short-lived
//!   connections never pay for one): a `FILES_UPDATE` SQE installs its fd. Its SQEs name the
//!   slot only once that install's CQE says it worked; until then, and if it failed, they
//!   name the fd.
//! - A dropped socket's slot is emptied by a `FILES_UPDATE` SQE pushed when the socket is
//!   released, behind every SQE that names it: the socket's own operations were pushed before
//!   it was dropped, pushes keep their order (the ring's backlog included), and the kernel
//!   takes a request's file when it issues it, in SQ order (the driver links no SQEs and never
//!   forces one async). A request in flight keeps its file alive on its own.
//! - The slot goes back to the free list only with the emptying's CQE. Only the owning
//!   reactor's thread touches the table.
//! - Only on 6.13 and later: before, the kernel let go of an emptied slot's file only once
//!   every request that named any slot before it had ended, so a dropped socket stayed open
//!   while, say, an idle accept on a listener with a slot waited.
//!
//! The second point rests on the kernel taking a fixed file at issue: an SQE flagged
//! `IOSQE_ASYNC`, `IO_LINK` or `IO_DRAIN`, or submitted by an SQ thread, could take it later.
//! The driver makes none (`sqe::File` says so too), and the table is not made with `SQPOLL`.

use std::cell::{Cell, OnceCell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, Ordering};

use io_uring::{opcode, squeue, IoUring, Probe};

use crate::sqe::File;
use crate::user_data::UserData;

/// How many operations a socket starts on its reactor by fd before it gets a slot: installing
/// and emptying one costs two SQEs and their CQEs, about what a dozen fd lookups do.
pub(crate) const REGISTER_AFTER: u32 = 16;

/// The most slots a ring's table has (fewer if `RLIMIT_NOFILE` is lower: the kernel refuses a
/// table larger than it). Sockets beyond it are named by fd.
const MAX_SLOTS: u32 = 16 * 1024;

/// What a `FILES_UPDATE` reads to empty a slot.
static EMPTY: RawFd = -1;

/// Where a slot is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    /// Its install was pushed; its CQE has not come.
    Installing,
    /// The install worked: SQEs may name it.
    Installed,
    /// The install failed: its socket stays named by fd, and the slot waits for the socket's
    /// release like any other.
    Refused,
    /// Its emptying was pushed; its CQE has not come.
    Emptying,
}

/// A ring's table of registered files. Only its reactor's thread uses it.
pub(crate) struct FileTable {
    /// How many slots it gets.
    size: u32,
    /// Registered with the kernel when the first socket needs a slot (a ring whose sockets are
    /// all short-lived never has one): unset until then; `None` for good if the kernel refused.
    slots: OnceCell<Option<Slots>>,
    /// Installs and emptyings pushed whose CQE has not come yet.
    in_flight: Cell<usize>,
}

/// The slots of a registered table.
struct Slots {
    /// The fd each slot's install gives the kernel, read from here when the install is issued.
    ///
    /// # Invariant
    /// Never moves, and a slot's entry is written only while the slot is free, so it holds
    /// until its install is issued.
    fds: Box<[Cell<RawFd>]>,
    states: Box<[Cell<Slot>]>,
    free: RefCell<Vec<u32>>,
}

/// A socket's slot, as its source keeps it: the count of operations it started on its
/// reactor, or (once it has one) its slot. Written only on the owning reactor's thread.
#[derive(Debug, Default)]
pub(crate) struct SocketSlot(AtomicU32);

/// In a [`SocketSlot`]: the low bits are a slot.
const HAS_SLOT: u32 = 1 << 31;

impl Slots {
    /// Registers a sparse table of `size` slots on `ring`, all free.
    fn register(ring: &IoUring, size: u32) -> io::Result<Self> {
        ring.submitter().register_files_sparse(size)?;
        Ok(Slots {
            fds: (0..size).map(|_| Cell::new(-1)).collect(),
            states: (0..size).map(|_| Cell::new(Slot::Free)).collect(),
            // Popped from the back: low slots first.
            free: RefCell::new((0..size).rev().collect()),
        })
    }
}

impl SocketSlot {
    /// The socket is dropped: its slot, if it has one.
    pub(crate) fn take(&mut self) -> Option<u32> {
        let v = std::mem::take(self.0.get_mut());
        (v & HAS_SLOT != 0).then_some(v & !HAS_SLOT)
    }
}

impl FileTable {
    /// The table for `ring`, whose kernel has `opcodes`, or why it has none, in a phrase. The
    /// kernel's table is registered later, when a socket first needs a slot.
    pub(crate) fn for_ring(ring: &IoUring, opcodes: &Probe) -> Result<Self, String> {
        if ring.params().is_setup_sqpoll() {
            // The SQ thread reads SQEs on its own time, and other threads push into its SQ.
            return Err("not with SQPOLL".into());
        }
        if crate::setup::kernel_version() < (6, 13, 0) {
            // Before 6.13 the files of every slot emptied while any request naming a slot
            // waits (an idle accept, a one-shot receive) are let go only once that request
            // ends, in order: a dropped socket would stay open, its peer never seeing its end.
            // 6.13 counts references per file.
            return Err("before 6.13 an emptied slot's file waits for older requests".into());
        }
        if !opcodes.is_supported(opcode::FilesUpdate::CODE) {
            return Err("the kernel lacks FILES_UPDATE".into());
        }
        // SAFETY: getrlimit writes the struct it is given, nothing else.
        let limit = unsafe {
            let mut limit: libc::rlimit = std::mem::zeroed();
            match libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) {
                0 => limit.rlim_cur,
                _ => 0,
            }
        };
        // The kernel refuses a table larger than the limit.
        let size = limit.min(MAX_SLOTS as u64) as u32;
        if size == 0 {
            return Err("RLIMIT_NOFILE leaves no room for a table".into());
        }
        Ok(FileTable {
            size,
            slots: OnceCell::new(),
            in_flight: Cell::new(0),
        })
    }

    /// How many slots the table gets.
    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// The registered slots, registering the kernel's table on first use (`None` if the
    /// kernel refused it, then and from then on).
    fn registered(&self, ring: &IoUring) -> Option<&Slots> {
        let slots = self
            .slots
            .get_or_init(|| Slots::register(ring, self.size).ok());
        slots.as_ref()
    }

    /// The slots given out, if the table is registered.
    fn given(&self) -> Option<&Slots> {
        self.slots.get().and_then(Option::as_ref)
    }

    /// Registers a table of this size on `ring` (for the doctor): the error says why the
    /// kernel refused.
    pub(crate) fn try_register(&self, ring: &IoUring) -> io::Result<()> {
        Slots::register(ring, self.size).map(drop)
    }

    /// How the next SQE of the socket `fd`, whose slot is `slot`, names it, counting the
    /// operation; at the socket's [`REGISTER_AFTER`]th operation (while a slot is free), the
    /// install goes to `push` first. `ring` is the table's ring.
    #[inline]
    pub(crate) fn name(
        &self,
        fd: RawFd,
        slot: &SocketSlot,
        ring: &IoUring,
        push: impl FnOnce(squeue::Entry),
    ) -> File {
        let v = slot.0.load(Ordering::Relaxed);
        if v & HAS_SLOT != 0 {
            let index = v & !HAS_SLOT;
            // A socket holds a slot only once the table is registered.
            let state = self.given().and_then(|s| s.states.get(index as usize));
            return match state.map(Cell::get) {
                Some(Slot::Installed) => File::Fixed(index),
                _ => File::Fd(fd),
            };
        }
        if v + 1 < REGISTER_AFTER {
            slot.0.store(v + 1, Ordering::Relaxed);
        } else if let Some(install) = self.install(fd, slot, ring) {
            push(install);
        }
        File::Fd(fd)
    }

    /// Gives the socket `fd` a free slot, if there is one (if not, it asks again at its next
    /// operation): the SQE that installs it there.
    #[cold]
    fn install(&self, fd: RawFd, slot: &SocketSlot, ring: &IoUring) -> Option<squeue::Entry> {
        let slots = self.registered(ring)?;
        let index = slots.free.borrow_mut().pop()?;
        slots.fds[index as usize].set(fd);
        slots.states[index as usize].set(Slot::Installing);
        slot.0.store(HAS_SLOT | index, Ordering::Relaxed);
        self.in_flight.set(self.in_flight.get() + 1);
        let install = opcode::FilesUpdate::new(slots.fds[index as usize].as_ptr(), 1)
            .offset(index as i32)
            .build()
            .user_data(
                UserData::FileSlot {
                    index,
                    install: true,
                }
                .encode(),
            );
        Some(install)
    }

    /// The socket holding slot `index` was dropped: the SQE that empties the slot, to push
    /// behind every SQE that names it.
    ///
    /// # Panics
    /// If no socket was given slot `index` (the table is not registered).
    pub(crate) fn empty(&self, index: u32) -> squeue::Entry {
        let slots = self.given().expect("a slot given out");
        slots.states[index as usize].set(Slot::Emptying);
        self.in_flight.set(self.in_flight.get() + 1);
        opcode::FilesUpdate::new(&EMPTY, 1)
            .offset(index as i32)
            .build()
            .user_data(
                UserData::FileSlot {
                    index,
                    install: false,
                }
                .encode(),
            )
    }

    /// The CQE of slot `index`'s install (`install`) or emptying, with its result; `true` if it
    /// installed a socket's file.
    pub(crate) fn completed(&self, index: u32, install: bool, result: i32) -> bool {
        self.in_flight.set(self.in_flight.get() - 1);
        let Some(slots) = self.given() else {
            return false; // not ours: only registered slots are updated
        };
        let slot = &slots.states[index as usize];
        match (install, slot.get()) {
            // The one fd was installed.
            (true, Slot::Installing) if result == 1 => slot.set(Slot::Installed),
            (true, Slot::Installing) => slot.set(Slot::Refused),
            // Dropped before its install completed: the emptying is behind it.
            (true, _) => {}
            // An emptying allocates nothing on the kernels that get a table (6.13+), so it does
            // not fail; were it to, the slot's next install would replace the file it left.
            (false, _) => {
                slots.fds[index as usize].set(-1);
                slot.set(Slot::Free);
                slots.free.borrow_mut().push(index);
            }
        }
        install && result == 1
    }

    /// Whether an install or emptying may still be read by the kernel.
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight.get() > 0
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use io_uring::{IoUring, Probe};

    use super::{FileTable, SocketSlot, REGISTER_AFTER};
    use crate::sqe::File;
    use crate::user_data::UserData;

    /// The opcodes `ring`'s kernel has.
    fn probe(ring: &IoUring) -> Probe {
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe).expect("probe");
        probe
    }

    /// Submits `entry` and hands its CQE to the table; whether it installed a file.
    fn run(ring: &mut IoUring, table: &FileTable, entry: io_uring::squeue::Entry) -> bool {
        // SAFETY: the SQE points into the table's `fds` or `EMPTY`, both alive past the wait.
        unsafe { ring.submission().push(&entry) }.expect("room");
        ring.submit_and_wait(1).expect("submit");
        let cqe = ring.completion().next().expect("a completion");
        let UserData::FileSlot { index, install } = UserData::decode(cqe.user_data()) else {
            panic!("not a slot's update");
        };
        table.completed(index, install, cqe.result())
    }

    /// How `table` names the socket `fd`, and the install it pushes, if any.
    fn name(
        ring: &IoUring,
        table: &FileTable,
        fd: i32,
        slot: &SocketSlot,
    ) -> (File, Option<io_uring::squeue::Entry>) {
        let mut install = None;
        let file = table.name(fd, slot, ring, |entry| install = Some(entry));
        (file, install)
    }

    /// Names a socket `REGISTER_AFTER` times: by fd each time, with the install on the last.
    fn name_until_install(
        ring: &IoUring,
        table: &FileTable,
        fd: i32,
        slot: &SocketSlot,
    ) -> io_uring::squeue::Entry {
        for _ in 1..REGISTER_AFTER {
            let (file, install) = name(ring, table, fd, slot);
            assert!(file == File::Fd(fd) && install.is_none(), "{file:?}");
        }
        let (file, install) = name(ring, table, fd, slot);
        assert_eq!(
            file,
            File::Fd(fd),
            "named by slot before the install completed"
        );
        install.expect("the install")
    }

    /// A socket whose install the kernel refuses stays named by fd, and its slot is given out
    /// again only after the socket's release emptied it; a socket whose install works is named
    /// by its slot from then on.
    #[test]
    fn a_slot_is_named_only_after_its_install_worked_and_reused_only_after_its_emptying() {
        let mut ring = match IoUring::new(8) {
            Ok(ring) => ring,
            Err(e) => return eprintln!("skipped: this kernel refuses io_uring: {e}"),
        };
        let table = match FileTable::for_ring(&ring, &probe(&ring)) {
            Ok(table) => table,
            Err(e) => return eprintln!("skipped: no file table here: {e}"),
        };
        // An fd number nothing has open: the kernel refuses to install it.
        let (closed, mut refused) = (1 << 20, SocketSlot::default());
        let install = name_until_install(&ring, &table, closed, &refused);
        assert!(!run(&mut ring, &table, install), "installed a closed fd");
        let (file, install) = name(&ring, &table, closed, &refused);
        assert!(file == File::Fd(closed) && install.is_none(), "{file:?}");

        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (fd, mut installed) = (socket.as_raw_fd(), SocketSlot::default());
        let install = name_until_install(&ring, &table, fd, &installed);
        assert!(run(&mut ring, &table, install), "the install failed");
        let File::Fixed(index) = name(&ring, &table, fd, &installed).0 else {
            panic!("not named by its slot after its install");
        };
        assert_ne!(Some(index), refused.take(), "two sockets share a slot");

        // The refused socket's slot was still held: it comes back only with its emptying.
        let refused_index = index - 1;
        let emptying = table.empty(refused_index);
        let next = SocketSlot::default();
        let install = name_until_install(&ring, &table, fd, &next);
        assert!(run(&mut ring, &table, install));
        assert_ne!(name(&ring, &table, fd, &next).0, File::Fixed(refused_index));
        run(&mut ring, &table, emptying);
        let after = SocketSlot::default();
        let install = name_until_install(&ring, &table, fd, &after);
        assert!(run(&mut ring, &table, install));
        assert_eq!(
            name(&ring, &table, fd, &after).0,
            File::Fixed(refused_index)
        );
        assert!(installed.take().is_some());
    }
}
