//! The Unix stream echo server: one listener at a path; connections spread over the reactors
//! (each handed to its reactor through `into_std`/`from_std`).

use std::io;
use std::path::{Path, PathBuf};

use runtime::net::{UnixListener, UnixStream};

use crate::echo::echo_stream;
use crate::server::{announce_at, print_stats, report_connection, stop_signal, ServerArgs, USAGE};
use crate::Handling;

/// The flags: the common ones, with `--path PATH` instead of `--addr`.
pub fn parse(args: Vec<String>) -> Result<(PathBuf, ServerArgs), String> {
    let mut path = None;
    let mut rest = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--path" => path = Some(PathBuf::from(it.next().ok_or("--path needs a value")?)),
            "--addr" => return Err("unix_echo listens on --path PATH, not --addr".into()),
            _ => rest.push(arg),
        }
    }
    let path = path.unwrap_or_else(|| std::env::temp_dir().join("unix_echo.sock"));
    Ok((path, ServerArgs::parse(rest, 0)?))
}

/// The usage line.
pub fn usage() -> String {
    format!(
        "unix_echo [--path PATH] {}",
        USAGE.replace("[--addr IP:PORT] ", "")
    )
}

/// Removes a socket file that no server listens on any more (left by a killed run); a live
/// one is left alone, so that binding reports `AddrInUse`.
fn remove_stale(path: &Path) {
    let is_socket = std::fs::symlink_metadata(path)
        .map(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        .unwrap_or(false);
    if is_socket && std::os::unix::net::UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
}

/// Listens at `path`, prints the startup line, and echoes until SIGINT or SIGTERM; then removes
/// the socket file.
pub async fn serve(path: &Path, args: &ServerArgs) -> io::Result<()> {
    let stop = stop_signal()?;
    remove_stale(path);
    let listener = UnixListener::bind(path)?;
    let acceptor = runtime::spawn(accept(listener, args.reactors, args.handling));
    announce_at(path.display())?;
    stop.await;
    acceptor.abort();
    if args.stats {
        print_stats()?;
    }
    std::fs::remove_file(path)?;
    eprintln!("stopped");
    Ok(())
}

async fn accept(listener: UnixListener, reactors: usize, handling: Handling) {
    for n in 0.. {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let reactor = n % reactors;
        if reactor == 0 {
            drop(runtime::spawn(report_connection(echo_stream(
                stream, handling,
            ))));
            continue;
        }
        // Not read yet, so every backend hands it over; it registers with its new reactor.
        match stream.into_std() {
            Ok(std) => drop(runtime::spawn_on(reactor, async move {
                report_connection(
                    async move { echo_stream(UnixStream::from_std(std)?, handling).await },
                )
                .await
            })),
            Err(e) => eprintln!("hand-over to reactor {reactor}: {e}"),
        }
    }
}
