//! Thin, checked wrappers over the socket syscalls that are not operations (creating, binding,
//! options), shared by every backend and by `net`.

mod addr;
mod socket;

pub use addr::{sockaddr_from_std, sockaddr_to_std};
pub use socket::{
    bind, getsockopt_int, listen, local_addr, peer_addr, set_nonblocking, setsockopt_int, socket,
    take_error,
};

/// Calls a libc function and turns a `-1` return into the thread's `errno` as an `io::Error`.
#[macro_export]
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        #[allow(unused_unsafe)]
        // SAFETY: the caller of the macro passes arguments valid for this libc call.
        let res = unsafe { ::libc::$fn($($arg),*) };
        if res == -1 {
            Err(::std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}
