//! Wakers waiting, on any threads, for a condition that other threads make true (a flag set, a
//! count reaching zero, a signal delivered). Each waiter holds a slot of its own, so that
//! polling again costs no scan of the others, and gives it back when it is dropped, so that
//! waiters that went away leave nothing behind.

use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use slab::Slab;

/// The wakers waiting for one condition.
#[derive(Debug, Default)]
pub struct Waiters(Mutex<Slab<Waker>>);

/// One waiter's place in a [`Waiters`]: its slot and the waker in it. Its owner gives it back
/// with [`Waiters::leave`] when it is dropped.
#[derive(Debug, Default)]
pub struct WaitSlot(Option<(usize, Waker)>);

impl Waiters {
    /// `Ready` once `done()` holds; otherwise leaves `cx`'s waker in `slot` and looks again (a
    /// change made before the waker was in place woke nobody).
    pub fn poll_until(
        &self,
        slot: &mut WaitSlot,
        cx: &mut Context<'_>,
        done: impl Fn() -> bool,
    ) -> Poll<()> {
        if done() {
            return Poll::Ready(());
        }
        match &mut slot.0 {
            Some((_, waker)) if waker.will_wake(cx.waker()) => return Poll::Pending,
            Some((key, waker)) => {
                *waker = cx.waker().clone();
                self.0.lock()[*key] = waker.clone();
            }
            None => {
                let key = self.0.lock().insert(cx.waker().clone());
                slot.0 = Some((key, cx.waker().clone()));
            }
        }
        if done() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Gives `slot` back (a waiter that is dropped, or done waiting).
    pub fn leave(&self, slot: &mut WaitSlot) {
        if let Some((key, _)) = slot.0.take() {
            self.0.lock().remove(key);
        }
    }

    /// Wakes every waiter; each keeps its slot until it leaves.
    pub fn wake_all(&self) {
        // Cloned out and woken unlocked: a wake may run code that reaches these waiters.
        let wakers: Vec<Waker> = self.0.lock().iter().map(|(_, w)| w.clone()).collect();
        for w in wakers {
            w.wake();
        }
    }
}
