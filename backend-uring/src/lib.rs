//! The ring driver: the [`Driver`](runtime_core::Driver) contract over io_uring.
//!
//! One ring per reactor, set up with `SINGLE_ISSUER | DEFER_TASKRUN | TASKRUN_FLAG` where the
//! kernel accepts them (`setup.rs`). Operations become SQEs that wait in the submission queue
//! until the reactor's next [`park`](runtime_core::Driver::park), which submits them all and
//! waits in one `io_uring_enter`. The op table (`op_table.rs`) keeps each operation's state, and its memory
//! after its future is dropped, until its CQE arrives.

mod direct;
mod direct_descriptors;
mod doctor;
mod driver;
mod enter;
mod framing;
mod handoff;
mod lifecycle;
mod multishot;
mod op_table;
mod provided;
mod ring;
mod salvage;
mod setup;
mod shared;
mod socket_kind;
mod source;
mod sqe;
mod user_data;
mod wake;

pub use doctor::{doctor, Finding, UringReport};
pub use driver::{is_current, RingDriver};
pub use provided::StreamBuffers;
pub use setup::{RingConfig, RingWake, ZERO_COPY_FROM};
pub use source::{HandoffHandle, RingOpState, RingSource};
