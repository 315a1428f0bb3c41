//! Model check of the parking protocol: no interleaving of wakers and a parking reactor leaves
//! work queued while the reactor sleeps without an eventfd write.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p runtime-core --test loom_park --release`.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use runtime_core::park::ParkState;

/// `wakers` threads each queue one item and notify; the reactor loops like the executor does
/// (take_notified, drain, begin_park, sleep, end_park) until it has every item. Whenever it
/// sleeps, the model lets every waker finish and then requires that, if work is still queued,
/// the eventfd was written: otherwise the reactor would sleep forever.
fn model(wakers: usize) {
    loom::model(move || {
        let park = Arc::new(ParkState::default());
        let queue = Arc::new(Mutex::new(Vec::new()));
        let eventfd = Arc::new(AtomicUsize::new(0));
        let mut handles: Vec<_> = (0..wakers)
            .map(|i| {
                let (park, queue, eventfd) = (park.clone(), queue.clone(), eventfd.clone());
                thread::spawn(move || {
                    queue.lock().unwrap().push(i);
                    if park.notify() {
                        eventfd.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        let mut received = 0;
        while received < wakers {
            park.take_notified();
            received += queue.lock().unwrap().drain(..).count();
            if received == wakers {
                break;
            }
            if park.begin_park() {
                // Asleep: everything else runs to completion meanwhile.
                for h in handles.drain(..) {
                    h.join().unwrap();
                }
                let pending = !queue.lock().unwrap().is_empty();
                let woken = eventfd.swap(0, Ordering::SeqCst) > 0;
                assert!(
                    woken || !pending,
                    "lost wakeup: work queued, reactor asleep, no eventfd write"
                );
                park.end_park();
            }
        }
        for h in handles {
            h.join().unwrap();
        }
    });
}

#[test]
fn one_waker_is_never_lost() {
    model(1);
}

#[test]
fn two_wakers_are_never_lost() {
    model(2);
}
