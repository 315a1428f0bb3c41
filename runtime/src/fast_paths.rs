//! The io_uring fast paths: each is taken where the kernel has it, all but the three opt-in
//! ones (receive bundles, incremental buffers, zero-copy sends) by default; each can be
//! switched by the [`Builder`](crate::Builder), or off by [`URING_OFF_ENV`], to measure what it
//! buys or to run the path an older kernel takes.

use std::io;

/// The environment variable that switches io_uring fast paths off: a comma-separated list of
/// names from [`FAST_PATHS`] (`RUNTIME_URING_OFF=min-wait,registered-ring-fd`).
pub const URING_OFF_ENV: &str = "RUNTIME_URING_OFF";

/// One io_uring fast path: its name (for [`URING_OFF_ENV`] and
/// [`Builder::uring_fast_path`](crate::Builder::uring_fast_path)), whether it is taken by
/// default, and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastPath {
    /// The name switches use.
    pub name: &'static str,
    /// Taken by default, where the kernel has it.
    pub on_by_default: bool,
    /// What the path does, and the kernel it needs.
    pub what: &'static str,
}

impl FastPath {
    /// The fast path called `name`, if there is one.
    pub fn named(name: &str) -> Option<FastPath> {
        FAST_PATHS.into_iter().find(|p| p.name == name)
    }
}

/// The io_uring fast paths.
pub const FAST_PATHS: [FastPath; 9] = [
    FastPath {
        name: "multishot-receive",
        on_by_default: true,
        what: "reads through one armed multishot receive per socket into provided buffers (5.19+)",
    },
    FastPath {
        name: "late-receive",
        on_by_default: true,
        what: "with multishot receive, while the reactor is busy (32 completions in a reap), \
               reads as one-shot receives at the end of the turn, which find their data there \
               and skip the poll wakeup and task work a multishot arrival costs; not for \
               sockets read through the poll-based adapter (hyper's)",
    },
    FastPath {
        name: "receive-bundle",
        on_by_default: false,
        what: "a stream's multishot receive as a bundle, one completion for the buffers it fills \
               (6.10+); off by default: level on loopback, and stable kernels 6.13.11-6.14.8 \
               reorder bundled buffers",
    },
    FastPath {
        name: "incremental-buffers",
        on_by_default: false,
        what: "stream receives into 32 KiB buffers the kernel consumes a receive at a time, \
               shared by small messages (IOU_PBUF_RING_INC, 6.12+; bundles are then not used)",
    },
    FastPath {
        name: "zero-copy-send",
        on_by_default: false,
        what: "sends of 16 KiB and more as SEND_ZC, the buffer held until the kernel's \
               notification (6.0+); off by default: on loopback the kernel copies anyway",
    },
    FastPath {
        name: "min-wait",
        on_by_default: true,
        what: "the latency budget as the kernel's min_wait (6.12+); off, the reactor naps",
    },
    FastPath {
        name: "registered-ring-fd",
        on_by_default: true,
        what: "io_uring_enter by the ring's registered index, not its fd (5.18+)",
    },
    FastPath {
        name: "no-sqarray",
        on_by_default: true,
        what: "the ring without the SQ index array (IORING_SETUP_NO_SQARRAY, 6.6+)",
    },
    FastPath {
        name: "direct-descriptors",
        on_by_default: true,
        what: "a socket that has done 16 operations on its reactor gets a slot in the ring's \
               registered file table, and that reactor's SQEs name the slot instead of the fd, \
               sparing the kernel a file lookup per request (6.13+; not with SQPOLL)",
    },
];

/// Which fast paths are switched off: bit `i` for `FAST_PATHS[i]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SwitchedOff(u32);

/// `FAST_PATHS`' index of the path `name`.
fn index(name: &str) -> Option<usize> {
    FAST_PATHS.iter().position(|p| p.name == name)
}

impl Default for SwitchedOff {
    /// Each path as [`FAST_PATHS`] says it is by default.
    fn default() -> Self {
        let bits = FAST_PATHS
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.on_by_default)
            .fold(0, |bits, (i, _)| bits | 1 << i);
        SwitchedOff(bits)
    }
}

impl SwitchedOff {
    /// Whether the path `name` is on (not switched off).
    ///
    /// # Panics
    /// If no path is named `name` (a name written in this crate, which its tests read).
    #[cfg_attr(not(feature = "uring"), allow(dead_code))] // read only by the io_uring driver
    pub(crate) fn on(&self, name: &str) -> bool {
        let i = index(name).unwrap_or_else(|| panic!("no fast path named {name:?}"));
        self.0 & 1 << i == 0
    }

    /// Switches the path `name` off (`off`) or on; an unknown name is an `InvalidInput` error
    /// that lists the known ones.
    pub(crate) fn switch(&mut self, name: &str, off: bool) -> io::Result<()> {
        let i = index(name).ok_or_else(|| {
            let known: Vec<&str> = FAST_PATHS.iter().map(|p| p.name).collect();
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "no io_uring fast path named {name:?} (known: {})",
                    known.join(", ")
                ),
            )
        })?;
        match off {
            true => self.0 |= 1 << i,
            false => self.0 &= !(1 << i),
        }
        Ok(())
    }

    /// [`SwitchedOff::switch`] for a name written in this crate.
    pub(crate) fn set(&mut self, name: &str, off: bool) {
        self.switch(name, off).expect("a listed fast path");
    }

    /// These, and every path [`URING_OFF_ENV`] names.
    pub(crate) fn with_env(mut self) -> io::Result<Self> {
        let Ok(list) = std::env::var(URING_OFF_ENV) else {
            return Ok(self);
        };
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            self.switch(name, true)
                .map_err(|e| io::Error::new(e.kind(), format!("{URING_OFF_ENV}: {e}")))?;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_path_has_a_switch() {
        for path in FAST_PATHS {
            let mut off = SwitchedOff::default();
            assert_eq!(
                off.on(path.name),
                path.on_by_default,
                "{}'s default",
                path.name
            );
            off.set(path.name, path.on_by_default);
            assert_eq!(
                off.on(path.name),
                !path.on_by_default,
                "{} stuck",
                path.name
            );
            let others = FAST_PATHS.iter().filter(|p| p.name != path.name);
            for other in others {
                let default = SwitchedOff::default().on(other.name);
                assert_eq!(
                    off.on(other.name),
                    default,
                    "{} moved {}",
                    path.name,
                    other.name
                );
            }
        }
        assert!(FAST_PATHS.len() <= 32, "one bit each");
        let err = SwitchedOff::default().switch("fast", true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("no-sqarray"), "{err}");
    }
}
