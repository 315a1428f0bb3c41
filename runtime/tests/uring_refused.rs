//! io_uring refused by a seccomp filter (EPERM, then ENOSYS), in a child process: an `Auto`
//! runtime falls back to epoll and says why; asking for io_uring fails with a clear error.
//! (A build without io_uring has nothing to refuse.)
#![cfg(feature = "uring")]

use std::process::Command;

use runtime::{Backend, Builder};

/// Installs a seccomp filter that fails `io_uring_setup` with `errno` and allows the rest.
fn refuse_io_uring(errno: u32) {
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    const RET_KILL: u32 = 0;
    let stmt = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |k, jt, jf| libc::sock_filter {
        code: JEQ_K,
        jt,
        jf,
        k,
    };
    let filter = [
        stmt(LD_W_ABS, 4), // seccomp_data.arch
        jump(ARCH, 1, 0),
        stmt(RET_K, RET_KILL),
        stmt(LD_W_ABS, 0), // seccomp_data.nr
        jump(libc::SYS_io_uring_setup as u32, 0, 1),
        stmt(RET_K, RET_ERRNO | errno),
        stmt(RET_K, RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: plain prctl; required before an unprivileged seccomp filter.
    let res = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(res, 0, "PR_SET_NO_NEW_PRIVS");
    // SAFETY: `prog` points to a valid filter that outlives the call (the kernel copies it).
    let res = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        )
    };
    assert_eq!(
        res,
        0,
        "PR_SET_SECCOMP: {}",
        std::io::Error::last_os_error()
    );
}

/// Run in a child process by the test below: filter, then report what the runtime does.
#[test]
fn child_under_seccomp() {
    let Ok(errno) = std::env::var("SECCOMP_CHILD_ERRNO") else {
        return;
    };
    refuse_io_uring(errno.parse().expect("errno"));
    for backend in [Backend::Auto, Backend::Uring] {
        match Builder::new()
            .backend(backend)
            .reactors(1)
            .pool_threads(0)
            .try_block_on(async { runtime::running_backend().expect("inside the runtime") })
        {
            Ok(info) => println!("CHILD {backend}: ran {} ({})", info.kind(), info.reason()),
            Err(e) => println!("CHILD {backend}: error {e}"),
        }
    }
    for line in runtime::doctor().to_string().lines() {
        println!("CHILD doctor: {line}");
    }
}

fn run_child(errno: i32) -> String {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "child_under_seccomp",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SECCOMP_CHILD_ERRNO", errno.to_string())
        .env_remove("RUNTIME_BACKEND")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once("CHILD ").map(|(_, rest)| rest.to_string()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn io_uring_refused_by_seccomp_is_reported_or_falls_back() {
    for (errno, name) in [(libc::EPERM, "EPERM"), (libc::ENOSYS, "ENOSYS")] {
        let report = run_child(errno);
        let auto = report
            .lines()
            .find(|l| l.starts_with("auto:"))
            .expect("auto line");
        let uring = report
            .lines()
            .find(|l| l.starts_with("uring:"))
            .expect("uring line");
        if cfg!(feature = "epoll") {
            assert!(auto.contains("ran epoll"), "{auto}");
            assert!(auto.contains("fell back to epoll"), "{auto}");
        } else {
            assert!(auto.contains("error"), "{auto}");
        }
        assert!(auto.contains(name), "the reason names {name}: {auto}");
        assert!(
            uring.starts_with("uring: error io_uring_setup failed with"),
            "{uring}"
        );
        assert!(uring.contains(name), "the error names {name}: {uring}");
        // The preflight says the same, in one line, and what a default runtime does.
        let setup = report
            .lines()
            .find(|l| l.starts_with("doctor:") && l.contains("io_uring_setup"))
            .expect("doctor's setup line");
        assert!(setup.starts_with("doctor: MISS"), "{setup}");
        assert!(setup.contains(name), "{setup}");
        let choice = report
            .lines()
            .find(|l| l.contains("backend") && l.starts_with("doctor: =>"))
            .expect("doctor's choice");
        if cfg!(feature = "epoll") {
            assert!(choice.contains("runs on epoll"), "{choice}");
            assert!(choice.contains("fell back to epoll"), "{choice}");
        } else {
            assert!(choice.contains("cannot start"), "{choice}");
        }
    }
}

/// On this machine's kernel, the preflight finds everything the driver needs, and a default
/// runtime would run on io_uring.
#[test]
fn doctor_reports_a_usable_ring_here() {
    if std::env::var_os("RUNTIME_BACKEND").is_some() {
        return eprintln!("skipped: RUNTIME_BACKEND chooses the backend");
    }
    let report = runtime::doctor();
    let text = report.to_string();
    if !report.uring.usable {
        return eprintln!("skipped: io_uring is refused here:\n{text}");
    }
    for topic in [
        "kernel",
        "io_uring_disabled",
        "RLIMIT_MEMLOCK",
        "opcodes",
        "buffer ring",
    ] {
        assert!(text.contains(topic), "no {topic} line:\n{text}");
    }
    let setup = text
        .lines()
        .find(|l| l.contains("io_uring_setup"))
        .expect("setup");
    assert!(setup.starts_with("ok"), "{setup}");
    assert!(report.choice.contains("runs on uring"), "{}", report.choice);
}
