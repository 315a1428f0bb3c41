//! `runtime::doctor()`: the io_uring preflight, and the backend a default runtime would run on.

use std::fmt;

use crate::builder::Builder;

/// What [`doctor`] found. Its `Display` prints one line per finding.
#[derive(Debug, Clone)]
pub struct Doctor {
    /// The io_uring preflight (`None` in a build without the `uring` feature).
    #[cfg(feature = "uring")]
    pub uring: backend_uring::UringReport,
    /// What a default runtime (`Builder::new()`, with `RUNTIME_BACKEND` if set) would run on.
    pub choice: String,
}

/// Looks at the kernel (its release, `kernel.io_uring_disabled`, a seccomp filter or container
/// policy refusing io_uring, `RLIMIT_MEMLOCK`), the setup flags, features and opcodes it takes,
/// the buffer rings, which fast paths the io_uring driver will use, and which backend a default
/// runtime would choose and why. Each missing piece is explained in one line.
pub fn doctor() -> Doctor {
    let choice = match Builder::new().resolve_backend() {
        Ok(info) => format!("a default runtime runs on {info}"),
        Err(e) => format!("a default runtime cannot start: {e}"),
    };
    Doctor {
        #[cfg(feature = "uring")]
        uring: backend_uring::doctor(),
        choice,
    }
}

impl fmt::Display for Doctor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        #[cfg(feature = "uring")]
        write!(f, "{}", self.uring)?;
        #[cfg(not(feature = "uring"))]
        writeln!(
            f,
            "MISS io_uring                built without the `uring` feature"
        )?;
        writeln!(f, "=>   backend                {}", self.choice)
    }
}
