//! The io_uring fast paths: each is taken by default where the kernel has it, and each can be
//! switched off, by the [`Builder`](crate::Builder) or by [`URING_OFF_ENV`], to measure what it
//! buys or to run the path an older kernel takes.

use std::io;

/// The environment variable that switches io_uring fast paths off: a comma-separated list of
/// names from [`FAST_PATHS`] (`RUNTIME_URING_OFF=min-wait,registered-ring-fd`).
pub const URING_OFF_ENV: &str = "RUNTIME_URING_OFF";

/// The fast paths [`URING_OFF_ENV`] can name, with what each one is.
pub const FAST_PATHS: [(&str, &str); 4] = [
    (
        "multishot-receive",
        "reads through one armed multishot receive per socket into provided buffers (5.19+)",
    ),
    (
        "min-wait",
        "the latency budget as the kernel's min_wait (6.12+); off, the reactor naps",
    ),
    (
        "registered-ring-fd",
        "io_uring_enter by the ring's registered index, not its fd (5.18+)",
    ),
    (
        "no-sqarray",
        "the ring without the SQ index array (IORING_SETUP_NO_SQARRAY, 6.6+)",
    ),
];

/// Which fast paths are switched off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SwitchedOff {
    pub(crate) multishot_receive: bool,
    pub(crate) min_wait: bool,
    pub(crate) registered_ring_fd: bool,
    pub(crate) no_sqarray: bool,
}

impl SwitchedOff {
    fn flag(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "multishot-receive" => &mut self.multishot_receive,
            "min-wait" => &mut self.min_wait,
            "registered-ring-fd" => &mut self.registered_ring_fd,
            "no-sqarray" => &mut self.no_sqarray,
            _ => return None,
        })
    }

    /// Switches the path `name` off (`off`) or on; an unknown name is an `InvalidInput` error
    /// that lists the known ones.
    pub(crate) fn switch(&mut self, name: &str, off: bool) -> io::Result<()> {
        let flag = self.flag(name).ok_or_else(|| {
            let known: Vec<&str> = FAST_PATHS.iter().map(|(n, _)| *n).collect();
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "no io_uring fast path named {name:?} (known: {})",
                    known.join(", ")
                ),
            )
        })?;
        *flag = off;
        Ok(())
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
        for (name, _) in FAST_PATHS {
            let mut off = SwitchedOff::default();
            *off.flag(name).expect(name) = true;
            assert_ne!(off, SwitchedOff::default(), "{name} switches nothing");
        }
        assert!(SwitchedOff::default().flag("fast").is_none());
        let err = SwitchedOff::default().switch("fast", true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("no-sqarray"), "{err}");
    }
}
