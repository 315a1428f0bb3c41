//! Model check of a task's wake protocol: no interleaving of a poll with a waker or an abort
//! from another thread leaves the news unseen by the poll and the task unqueued.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p runtime-core --test loom_task --release`.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use runtime_core::task_state::TaskState;

/// The task is queued and its reactor polls it while another thread aborts it: the poll sees
/// the abort, or the abort queues the task for a poll that will.
#[test]
fn an_abort_racing_a_poll_is_never_lost() {
    loom::model(|| {
        let state = Arc::new(TaskState::queued());
        let aborter = thread::spawn({
            let state = state.clone();
            move || state.abort()
        });
        let seen = state.begin_poll();
        let queued_again = aborter.join().unwrap();
        assert!(seen || queued_again, "the abort was lost");
        if queued_again {
            assert!(
                state.begin_poll(),
                "the poll the abort queued did not see it"
            );
        }
    });
}

/// The task is queued and its reactor polls it while another thread publishes a value and
/// wakes it: the poll sees the value, or the wake queues the task again.
#[test]
fn a_wake_racing_a_poll_is_never_lost() {
    loom::model(|| {
        let state = Arc::new(TaskState::queued());
        let value = Arc::new(AtomicBool::new(false));
        let waker = thread::spawn({
            let (state, value) = (state.clone(), value.clone());
            move || {
                value.store(true, Ordering::Relaxed);
                state.wake()
            }
        });
        state.begin_poll();
        let seen = value.load(Ordering::Relaxed);
        let queued_again = waker.join().unwrap();
        assert!(seen || queued_again, "the wake was lost");
    });
}
