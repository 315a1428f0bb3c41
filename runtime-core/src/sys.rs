//! The libc return-value check shared by every backend. Sockets themselves (creation, binding,
//! options, addresses) go through `socket2`.

/// The credentials of the process at the other end of a Unix socket (`SO_PEERCRED`): as it was
/// when it connected, or when the pair was made.
pub fn peer_cred(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<libc::ucred> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are live, and `len` holds the size of `cred`.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok(cred)
}

/// Turns a libc return value of `-1` into the thread's `errno` as an `io::Error`.
pub fn cvt<T: MinusOne>(res: T) -> std::io::Result<T> {
    if res.is_minus_one() {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(res)
    }
}

/// Integer types libc functions return, with `-1` meaning failure.
pub trait MinusOne: Copy {
    /// Whether this is `-1`.
    fn is_minus_one(self) -> bool;
}

impl MinusOne for i32 {
    fn is_minus_one(self) -> bool {
        self == -1
    }
}

impl MinusOne for isize {
    fn is_minus_one(self) -> bool {
        self == -1
    }
}
