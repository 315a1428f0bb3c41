//! Thin, checked wrappers over the socket syscalls that are not operations (creating, binding,
//! options), shared by every backend and by `net`.

mod addr;
mod socket;

pub use addr::{sockaddr_from_std, sockaddr_to_std};
pub use socket::{
    bind, getsockopt_int, listen, local_addr, peer_addr, set_linger, set_nonblocking,
    setsockopt_int, socket, take_error,
};

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
