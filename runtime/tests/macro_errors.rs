//! `#[runtime::main]` and `#[runtime::test]` reject bad input with errors at the user's code.

// The passing case runs on epoll, so it needs a build with both backends.
#[cfg(all(feature = "uring", feature = "epoll"))]
#[test]
fn macro_errors_point_at_the_user_code() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail_*.rs");
    t.pass("tests/ui/pass_*.rs");
}
