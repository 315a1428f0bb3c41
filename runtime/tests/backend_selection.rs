//! Choosing the backend: by the program, by `RUNTIME_BACKEND`, and what `backend()` reports.

use runtime::{Backend, Builder};

#[cfg(feature = "epoll")]
#[test]
fn the_requested_backend_runs_and_says_why() {
    let info = Builder::new()
        .backend(Backend::Epoll)
        .try_block_on(async { runtime::running_backend() });
    // RUNTIME_BACKEND is not set by the test runner; if a user sets it, it wins, as documented.
    if std::env::var_os("RUNTIME_BACKEND").is_some() {
        return;
    }
    let info = info.expect("epoll starts").expect("inside the runtime");
    assert_eq!(info.kind(), runtime::BackendKind::Epoll);
    assert!(info.reason().contains("requested by the program"), "{info}");
    assert!(
        runtime::running_backend().is_none(),
        "no backend outside a runtime"
    );
}

/// With a single backend built in, asking for the other is a clear error, not a panic.
#[cfg(not(all(feature = "uring", feature = "epoll")))]
#[test]
fn asking_for_a_backend_not_built_in_is_an_error() {
    let other = if cfg!(feature = "uring") {
        Backend::Epoll
    } else {
        Backend::Uring
    };
    if std::env::var_os("RUNTIME_BACKEND").is_some() {
        return;
    }
    let err = Builder::new()
        .backend(other)
        .try_block_on(async {})
        .expect_err("not built in");
    assert!(err.to_string().contains("this build has no"), "{err}");
}

/// Run in a child process by the test below, with the environment it sets.
#[test]
fn child_reports_its_backend() {
    if std::env::var_os("SELECTION_CHILD").is_none() {
        return;
    }
    match Builder::new()
        .backend(Backend::Uring)
        .try_block_on(async { runtime::running_backend().expect("inside the runtime") })
    {
        Ok(info) => println!("CHILD backend={} reason={}", info.kind(), info.reason()),
        Err(e) => println!("CHILD error={e}"),
    }
}

#[cfg(all(feature = "uring", feature = "epoll"))]
fn child(env: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "child_reports_its_backend",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SELECTION_CHILD", "1")
        .env("RUNTIME_BACKEND", env)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.split_once("CHILD ").map(|(_, rest)| rest.to_string()))
        .unwrap_or_else(|| panic!("child printed no result: {stdout}"))
}

#[cfg(all(feature = "uring", feature = "epoll"))]
#[test]
fn runtime_backend_overrides_the_program() {
    let epoll = child("epoll");
    assert!(
        epoll.starts_with("backend=epoll reason=RUNTIME_BACKEND=epoll"),
        "{epoll}"
    );

    let uring = child("uring");
    assert!(
        uring.starts_with("backend=uring reason=RUNTIME_BACKEND=uring")
            || uring.starts_with("error=io_uring_setup failed"),
        "{uring}"
    );

    let auto = child("auto");
    assert!(
        auto.starts_with("backend=uring") || auto.contains("fell back to epoll"),
        "{auto}"
    );

    let bad = child("kqueue");
    assert!(
        bad.starts_with("error=RUNTIME_BACKEND: unknown backend"),
        "{bad}"
    );
}

/// Pool threads report the backend of their runtime too, the same as its reactors.
#[runtime::test(pool_threads = 1)]
async fn the_pool_reports_the_runtimes_backend() {
    let here = runtime::running_backend().expect("on a reactor");
    let there = runtime::pool::spawn(async { runtime::running_backend() })
        .await
        .expect("pool task")
        .expect("a pool thread knows its runtime's backend");
    assert_eq!(here, there);
}
