//! A small in-memory key-value server speaking RESP: PING, ECHO, GET, SET, DEL, INCR, MGET,
//! with pipelining (every whole command in a read is answered in one write).

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io;
use std::sync::{Arc, Mutex};

use runtime::net::TcpStream;

use crate::requests::{self, Respond};
use crate::resp;
use crate::Handling;

const SHARDS: usize = 16;

/// The keys and values, shared by every connection and reactor.
#[derive(Debug)]
pub struct Store {
    shards: Vec<Mutex<HashMap<Vec<u8>, Vec<u8>>>>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Store {
    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Vec<u8>>> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let shard = &self.shards[h.finish() as usize % SHARDS];
        shard.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one command, appending its reply to `out`. Returns `false` for QUIT.
    pub fn execute(&self, args: &[Vec<u8>], out: &mut Vec<u8>) -> bool {
        let Some(name) = args.first() else {
            return true; // an empty inline line: nothing to answer
        };
        let name = name.to_ascii_uppercase();
        let arity = |n: usize| args.len() == n;
        match (&name[..], args.len()) {
            (b"PING", 1) => resp::simple(out, "PONG"),
            (b"PING", 2) | (b"ECHO", 2) => resp::bulk(out, Some(&args[1])),
            (b"GET", 2) => resp::bulk(out, self.shard(&args[1]).get(&args[1]).map(Vec::as_slice)),
            (b"SET", 3) => {
                self.shard(&args[1])
                    .insert(args[1].clone(), args[2].clone());
                resp::simple(out, "OK");
            }
            (b"DEL", n) if n >= 2 => {
                let removed = args[1..]
                    .iter()
                    .filter(|k| self.shard(k).remove(*k).is_some())
                    .count();
                resp::integer(out, removed as i64);
            }
            (b"INCR", 2) => {
                let mut shard = self.shard(&args[1]);
                let current = shard.get(&args[1]).map_or(Some(0), |v| {
                    std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                });
                match current.and_then(|n| n.checked_add(1)) {
                    Some(n) => {
                        shard.insert(args[1].clone(), n.to_string().into_bytes());
                        resp::integer(out, n);
                    }
                    None => resp::error(out, "ERR value is not an integer or out of range"),
                }
            }
            (b"MGET", n) if n >= 2 => {
                resp::array(out, n - 1);
                for k in &args[1..] {
                    resp::bulk(out, self.shard(k).get(k).map(Vec::as_slice));
                }
            }
            // What redis-benchmark and redis-cli ask on connecting: no persistence settings.
            (b"CONFIG", 3) if args[1].eq_ignore_ascii_case(b"GET") => {
                resp::array(out, 2);
                resp::bulk(out, Some(&args[2]));
                resp::bulk(out, Some(b""));
            }
            (b"CONFIG", _) | (b"COMMAND", _) => resp::array(out, 0),
            (b"QUIT", 1) => {
                resp::simple(out, "OK");
                return false;
            }
            (b"PING" | b"ECHO" | b"GET" | b"SET" | b"DEL" | b"INCR" | b"MGET" | b"QUIT", _)
                if !arity(0) =>
            {
                let name = String::from_utf8_lossy(&name).to_lowercase();
                resp::error(
                    out,
                    &format!("ERR wrong number of arguments for '{name}' command"),
                );
            }
            _ => {
                let name = String::from_utf8_lossy(&name);
                resp::error(out, &format!("ERR unknown command '{name}'"));
            }
        }
        true
    }

    /// Answers every whole command at the start of `pending` (removing them); returns the
    /// replies and whether the connection must close after them.
    pub fn respond(&self, pending: &mut Vec<u8>) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let mut used = 0;
        let mut close = false;
        loop {
            match resp::parse_command(&pending[used..]) {
                Ok(Some((args, len))) => {
                    used += len;
                    if !self.execute(&args, &mut out) {
                        close = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    resp::error(&mut out, &format!("ERR Protocol error: {}", e.0));
                    close = true;
                    break;
                }
            }
        }
        pending.drain(..used);
        (out, close)
    }
}

impl Respond for Store {
    fn respond(&self, pending: &mut Vec<u8>) -> (Vec<u8>, bool) {
        Store::respond(self, pending)
    }
}

/// Serves RESP on `stream` until the client closes, quits, or breaks the protocol.
pub async fn serve(
    stream: TcpStream,
    store: Arc<Store>,
    handling: impl Into<Handling>,
) -> io::Result<()> {
    requests::serve(stream, store, handling.into()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(store: &Store, input: &[u8]) -> Vec<u8> {
        let mut pending = input.to_vec();
        store.respond(&mut pending).0
    }

    #[test]
    fn commands_answer_like_redis() {
        let s = Store::default();
        assert_eq!(run(&s, b"PING\r\n"), b"+PONG\r\n");
        assert_eq!(
            run(&s, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n41\r\n"),
            b"+OK\r\n"
        );
        assert_eq!(run(&s, b"INCR k\r\nGET k\r\n"), b":42\r\n$2\r\n42\r\n");
        assert_eq!(run(&s, b"MGET k nope\r\n"), b"*2\r\n$2\r\n42\r\n$-1\r\n");
        assert_eq!(run(&s, b"DEL k nope\r\nGET k\r\n"), b":1\r\n$-1\r\n");
        assert_eq!(
            run(&s, b"SET s abc\r\nINCR s\r\n"),
            b"+OK\r\n-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(run(&s, b"FLY\r\n"), b"-ERR unknown command 'FLY'\r\n");
        assert_eq!(
            run(&s, b"GET\r\n"),
            b"-ERR wrong number of arguments for 'get' command\r\n"
        );
    }

    #[test]
    fn a_protocol_error_is_answered_and_closes() {
        let s = Store::default();
        let mut pending = b"*1\r\n$x\r\n".to_vec();
        let (out, close) = s.respond(&mut pending);
        assert!(out.starts_with(b"-ERR Protocol error"));
        assert!(close);
    }
}
