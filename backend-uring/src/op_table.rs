//! The table of operations started on their reactor, by key (their SQE's user data).

use std::sync::Arc;
use std::task::Waker;

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

/// Operations by user data (the slab key). Every method returns the work that must run once the
/// table's borrow is released.
#[derive(Default)]
pub(crate) struct OpTable {
    ops: Slab<Slot>,
}

impl OpTable {
    /// Starts an operation waiting with `waker`; returns its key.
    pub(crate) fn insert(&mut self, waker: Waker) -> usize {
        self.ops.insert(Slot::Here(Lifecycle::Waiting(waker)))
    }

    /// Records a CQE's result for `key`.
    pub(crate) fn complete(&mut self, key: usize, result: i32) -> Deferred {
        match self.ops.get_mut(key) {
            None => Deferred::Nothing,
            Some(Slot::Here(life)) => {
                let (deferred, over) = life.complete(result);
                if over {
                    self.ops.remove(key);
                }
                deferred
            }
            Some(Slot::Migrated(_)) => {
                let Slot::Migrated(cell) = self.ops.remove(key) else {
                    unreachable!("matched above")
                };
                Deferred::Complete(cell, result)
            }
        }
    }

    /// Polls `key` from its reactor: its result if completed (and forgets it), or keeps `waker`.
    pub(crate) fn poll(&mut self, key: usize, waker: &Waker) -> (Option<i32>, Deferred) {
        let Some(Slot::Here(life)) = self.ops.get_mut(key) else {
            unreachable!("an operation was polled through the table after it left it")
        };
        let polled = life.poll(waker);
        if polled.0.is_some() {
            self.ops.remove(key);
        }
        polled
    }

    /// The future of `key` is gone; `abandoned` owns its memory until the CQE. Returns what to
    /// run after the borrow, and whether the kernel still has the operation.
    pub(crate) fn abandon(&mut self, key: usize, abandoned: Abandoned) -> (Deferred, bool) {
        let Some(Slot::Here(life)) = self.ops.get_mut(key) else {
            unreachable!("an operation was dropped through the table after it left it")
        };
        let (deferred, in_flight) = life.abandon(abandoned);
        if !in_flight {
            self.ops.remove(key);
        }
        (deferred, in_flight)
    }

    /// The future of `key` is now polled on another thread: its result goes to `cell`.
    pub(crate) fn migrate(&mut self, key: usize, cell: Arc<HandoffOp>) -> Deferred {
        let Some(slot) = self.ops.get_mut(key) else {
            unreachable!("a migrated operation is in the table until its future sees the result")
        };
        match std::mem::replace(slot, Slot::Migrated(cell)) {
            Slot::Here(Lifecycle::Waiting(waker)) => Deferred::Drop(waker),
            Slot::Here(Lifecycle::Completed(res)) => {
                let Slot::Migrated(cell) = self.ops.remove(key) else {
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
        matches!(self.ops.get(key), Some(Slot::Migrated(c)) if Arc::ptr_eq(c, cell))
    }

    /// Keys of every operation the kernel still owns.
    pub(crate) fn in_flight(&self) -> impl Iterator<Item = usize> + '_ {
        self.ops
            .iter()
            .filter(|(_, slot)| !matches!(slot, Slot::Here(life) if life.is_completed()))
            .map(|(key, _)| key)
    }

    /// Whether the kernel still owns any operation.
    pub(crate) fn has_in_flight(&self) -> bool {
        self.in_flight().next().is_some()
    }

    /// Forgets every kept memory without freeing it: used only when the kernel cannot be made to
    /// let go, so that it never writes into freed memory.
    pub(crate) fn leak_all(&mut self) {
        for slot in self.ops.drain() {
            std::mem::forget(slot);
        }
    }
}
