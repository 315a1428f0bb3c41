//! The cooperative budget: how many I/O operations one poll of a task may run before it must
//! give the thread back.
//!
//! On epoll a read of a socket that always has data never returns `Pending`, so a task
//! streaming from a fast peer would keep its reactor forever and starve every other task on it.
//! Each task poll (and each poll of a `block_on` future or of a pool task) gets
//! [`BUDGET`] operations; once they are spent, an operation wakes its task and returns
//! `Pending`, which puts the task at the back of the run queue. Outside a task the budget is
//! unlimited.

use std::cell::Cell;
use std::task::{Context, Poll};

/// Operations per task poll (tokio uses 128 too).
pub const BUDGET: u32 = 128;

thread_local! {
    static REMAINING: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Restores the budget of the enclosing poll when a task's poll ends, even by unwinding.
struct Restore(Option<u32>);

impl Drop for Restore {
    fn drop(&mut self) {
        REMAINING.with(|r| r.set(self.0));
    }
}

/// Runs one task poll `f` with a fresh budget.
pub(crate) fn budgeted<R>(f: impl FnOnce() -> R) -> R {
    let _restore = Restore(REMAINING.with(|r| r.replace(Some(BUDGET))));
    f()
}

/// Takes one operation's worth of budget; `Pending` (with the task woken to run again later)
/// when the poll has spent it all.
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    REMAINING.with(|r| match r.get() {
        None => Poll::Ready(()),
        Some(0) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Some(n) => {
            r.set(Some(n - 1));
            Poll::Ready(())
        }
    })
}
