//! The table of operations started on their reactor, by key (their SQE's user data).

use std::sync::Arc;
use std::task::Waker;

use io_uring::cqueue;
use slab::Slab;

use crate::handoff::HandoffOp;
use crate::lifecycle::{Deferred, Lifecycle};
use crate::salvage::Abandoned;

/// One entry of the table.
enum Slot {
    /// The operation's lifecycle, here.
    Here(Lifecycle),
    /// Its future went on to be polled on another thread: the result goes to this cell.
    Migrated(Arc<HandoffOp>),
}

/// One operation: where its result goes, and a zero-copy send's result while its notification
/// has not come (the operation, and the kernel's hold on its buffer, end only with it).
struct Entry {
    slot: Slot,
    sent: Option<i32>,
}

/// Operations by user data (the slab key). Every method returns the work that must run once the
/// table's borrow is released.
#[derive(Default)]
pub(crate) struct OpTable {
    ops: Slab<Entry>,
}

impl OpTable {
    /// Starts an operation waiting with `waker`; returns its key.
    pub(crate) fn insert(&mut self, waker: Waker) -> usize {
        self.ops.insert(Entry {
            slot: Slot::Here(Lifecycle::Waiting(waker)),
            sent: None,
        })
    }

    /// Records a CQE's result for `key`. A CQE flagged `F_MORE` (a zero-copy send's result)
    /// is kept until its notification (`F_NOTIF`), which completes the operation with it.
    pub(crate) fn complete(&mut self, key: usize, result: i32, flags: u32) -> Deferred {
        let Some(entry) = self.ops.get_mut(key) else {
            return Deferred::Nothing;
        };
        if cqueue::more(flags) {
            entry.sent = Some(result);
            return Deferred::Nothing;
        }
        let result = match cqueue::notif(flags) {
            true => match entry.sent.take() {
                Some(sent) => sent,
                // Not after this operation's `F_MORE` result: nothing waits for it.
                None => return Deferred::Nothing,
            },
            false => result,
        };
        match &mut entry.slot {
            Slot::Here(life) => {
                let (deferred, over) = life.complete(result);
                if over {
                    self.ops.remove(key);
                }
                deferred
            }
            Slot::Migrated(_) => {
                let Slot::Migrated(cell) = self.ops.remove(key).slot else {
                    unreachable!("matched above")
                };
                Deferred::Complete(cell, result)
            }
        }
    }

    /// Polls `key` from its reactor: its result if completed (and forgets it), or keeps `waker`.
    pub(crate) fn poll(&mut self, key: usize, waker: &Waker) -> (Option<i32>, Deferred) {
        let Some(Entry {
            slot: Slot::Here(life),
            ..
        }) = self.ops.get_mut(key)
        else {
            unreachable!("an operation was polled through the table after it left it")
        };
        let polled = life.poll(waker);
        if polled.0.is_some() {
            self.ops.remove(key);
        }
        polled
    }

    /// The future of `key` is gone; `abandoned` owns its memory until the CQE. Returns what to
    /// run after the borrow, and whether a cancel could still stop the operation: the kernel
    /// has it, and it is not a zero-copy send whose result came, which only waits for its
    /// notification (kept until then either way).
    pub(crate) fn abandon(&mut self, key: usize, abandoned: Box<Abandoned>) -> (Deferred, bool) {
        let Some(Entry {
            slot: Slot::Here(life),
            sent,
        }) = self.ops.get_mut(key)
        else {
            unreachable!("an operation was dropped through the table after it left it")
        };
        let (deferred, in_flight) = life.abandon(abandoned);
        let cancellable = in_flight && sent.is_none();
        if !in_flight {
            self.ops.remove(key);
        }
        (deferred, cancellable)
    }

    /// The future of `key` is now polled on another thread: its result goes to `cell`.
    pub(crate) fn migrate(&mut self, key: usize, cell: Arc<HandoffOp>) -> Deferred {
        let Some(entry) = self.ops.get_mut(key) else {
            unreachable!("a migrated operation is in the table until its future sees the result")
        };
        match std::mem::replace(&mut entry.slot, Slot::Migrated(cell)) {
            Slot::Here(Lifecycle::Waiting(waker)) => Deferred::Drop(waker),
            Slot::Here(Lifecycle::Completed(res)) => {
                let Slot::Migrated(cell) = self.ops.remove(key).slot else {
                    unreachable!("just stored")
                };
                Deferred::Complete(cell, res)
            }
            Slot::Here(Lifecycle::Abandoned(_)) | Slot::Migrated(_) => {
                unreachable!("only a live future's operation migrates, once")
            }
        }
    }

    /// Whether the kernel still has the operation `key`, which migrated to `cell`.
    pub(crate) fn is_migrated_to(&self, key: usize, cell: &Arc<HandoffOp>) -> bool {
        matches!(self.ops.get(key), Some(Entry { slot: Slot::Migrated(c), .. }) if Arc::ptr_eq(c, cell))
    }

    /// Keys of every operation the kernel still owns.
    pub(crate) fn in_flight(&self) -> impl Iterator<Item = usize> + '_ {
        self.ops
            .iter()
            .filter(|(_, e)| !matches!(&e.slot, Slot::Here(life) if life.is_completed()))
            .map(|(key, _)| key)
    }

    /// Whether the kernel still owns any operation.
    pub(crate) fn has_in_flight(&self) -> bool {
        self.in_flight().next().is_some()
    }

    /// Forgets every kept memory without freeing it: used only when the kernel cannot be made to
    /// let go, so that it never writes into freed memory.
    pub(crate) fn leak_all(&mut self) {
        for entry in self.ops.drain() {
            std::mem::forget(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// `IORING_CQE_F_MORE` and `IORING_CQE_F_NOTIF`, as the kernel's uapi defines them.
    const F_MORE: u32 = 1 << 1;
    const F_NOTIF: u32 = 1 << 3;

    /// A table with one operation in flight, and a count of its wakes.
    struct OneOp {
        table: OpTable,
        key: usize,
        waker: Waker,
        wakes: Arc<Wakes>,
    }

    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl OneOp {
        fn new() -> Self {
            let wakes = Arc::new(Wakes::default());
            let waker = Waker::from(wakes.clone());
            let mut table = OpTable::default();
            let key = table.insert(waker.clone());
            OneOp {
                table,
                key,
                waker,
                wakes,
            }
        }

        fn complete(&mut self, result: i32, flags: u32) {
            self.table.complete(self.key, result, flags).run();
        }

        /// Its result, if its future would see one now.
        fn poll(&mut self) -> Option<i32> {
            let (res, deferred) = self.table.poll(self.key, &self.waker);
            deferred.run();
            res
        }

        fn wakes(&self) -> usize {
            self.wakes.0.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn a_zero_copy_send_completes_with_its_notification_and_its_result() {
        let mut op = OneOp::new();
        op.complete(65_536, F_MORE);
        assert_eq!(op.wakes(), 0, "woken before the notification");
        assert_eq!(
            op.poll(),
            None,
            "completed before the kernel let go of the buffer"
        );
        assert!(
            op.table.has_in_flight(),
            "the kernel still reads the buffer"
        );

        op.complete(0, F_NOTIF);
        assert_eq!(op.wakes(), 1);
        assert_eq!(
            op.poll(),
            Some(65_536),
            "the send's result, not the notification's"
        );
        assert!(!op.table.has_in_flight());
    }

    #[test]
    fn a_send_without_a_notification_completes_at_once() {
        let mut op = OneOp::new();
        op.complete(-libc::EPIPE, 0);
        assert_eq!(op.poll(), Some(-libc::EPIPE));
    }

    #[test]
    fn a_notification_without_a_send_result_completes_nothing() {
        let mut op = OneOp::new();
        op.complete(0, F_NOTIF);
        assert_eq!(op.wakes(), 0, "a stray notification woke it");
        assert_eq!(
            op.poll(),
            None,
            "a stray notification completed another operation"
        );
        assert!(op.table.has_in_flight());
    }
}
