//! RESP, the redis protocol: parsing commands (arrays of bulk strings, or inline lines) and
//! encoding replies.

/// The largest number of arguments one command may have.
pub const MAX_ARGS: usize = 1024 * 1024;
/// The largest bulk string accepted.
pub const MAX_BULK: usize = 64 * 1024 * 1024;
/// The longest inline command or header line.
pub const MAX_LINE: usize = 64 * 1024;

/// Why a buffer is not RESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub &'static str);

/// A parsed command and how many bytes it took.
pub type Command = (Vec<Vec<u8>>, usize);

/// Finds the `\r\n`-terminated line at `buf[start..]`; returns its end (before `\r\n`).
fn line_end(buf: &[u8], start: usize) -> Result<Option<usize>, ProtocolError> {
    let window = &buf[start..buf.len().min(start + MAX_LINE + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(start + i)),
        None if window.len() > MAX_LINE => Err(ProtocolError("line too long")),
        None => Ok(None),
    }
}

fn number(digits: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ProtocolError("invalid length"))
}

/// Parses the command at the start of `buf`: `Ok(None)` if it is not all there yet.
pub fn parse_command(buf: &[u8]) -> Result<Option<Command>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return parse_inline(buf);
    }
    let Some(end) = line_end(buf, 1)? else {
        return Ok(None);
    };
    let count = number(&buf[1..end])?;
    if !(1..=MAX_ARGS as i64).contains(&count) {
        return Err(ProtocolError("invalid multibulk length"));
    }
    let mut pos = end + 2;
    let mut args = Vec::with_capacity((count as usize).min(64));
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError("expected '$'"));
        }
        let Some(end) = line_end(buf, pos + 1)? else {
            return Ok(None);
        };
        let len = number(&buf[pos + 1..end])?;
        if !(0..=MAX_BULK as i64).contains(&len) {
            return Err(ProtocolError("invalid bulk length"));
        }
        let start = end + 2;
        let stop = start + len as usize;
        if buf.len() < stop + 2 {
            return Ok(None);
        }
        if &buf[stop..stop + 2] != b"\r\n" {
            return Err(ProtocolError("bulk string not terminated"));
        }
        args.push(buf[start..stop].to_vec());
        pos = stop + 2;
    }
    Ok(Some((args, pos)))
}

fn parse_inline(buf: &[u8]) -> Result<Option<Command>, ProtocolError> {
    let Some(nl) = buf.iter().take(MAX_LINE + 1).position(|&b| b == b'\n') else {
        return if buf.len() > MAX_LINE {
            Err(ProtocolError("line too long"))
        } else {
            Ok(None)
        };
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let args: Vec<Vec<u8>> = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    Ok(Some((args, nl + 1)))
}

/// Appends a simple string reply.
pub fn simple(out: &mut Vec<u8>, s: &str) {
    out.push(b'+');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends an error reply.
pub fn error(out: &mut Vec<u8>, s: &str) {
    out.push(b'-');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends an integer reply.
pub fn integer(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(format!(":{n}\r\n").as_bytes());
}

/// Appends a bulk string reply, or the null bulk string for `None`.
pub fn bulk(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => {
            out.extend_from_slice(format!("${}\r\n", s.len()).as_bytes());
            out.extend_from_slice(s);
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"$-1\r\n"),
    }
}

/// Appends an array header of `n` elements.
pub fn array(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(format!("*{n}\r\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests::Rng;

    #[test]
    fn arrays_and_inline_commands_parse() {
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nPING\r\n";
        let (args, used) = parse_command(buf).unwrap().unwrap();
        assert_eq!(
            args,
            vec![b"SET".to_vec(), b"k".to_vec(), b"hello".to_vec()]
        );
        let (args, rest) = parse_command(&buf[used..]).unwrap().unwrap();
        assert_eq!(args, vec![b"PING".to_vec()]);
        assert_eq!(used + rest, buf.len());
        for cut in 0..used {
            assert_eq!(
                parse_command(&buf[..cut]),
                Ok(None),
                "a prefix of {cut} bytes waits"
            );
        }
    }

    #[test]
    fn bad_lengths_are_protocol_errors() {
        assert!(parse_command(b"*-1\r\n").is_err());
        assert!(parse_command(b"*1\r\n$-5\r\n").is_err());
        assert!(parse_command(b"*1\r\n$x\r\n").is_err());
        assert!(parse_command(b"*1\r\n$1\r\nab\r\n").is_err());
    }

    /// Random bytes and mutated commands never panic the parser, and a parsed command never
    /// claims more bytes than there are.
    #[test]
    fn property_parser_survives_arbitrary_input() {
        let valid = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$2\r\nvv\r\n";
        let mut rng = Rng(0x5245_5350);
        for round in 0..50_000 {
            let input: Vec<u8> = if round % 2 == 0 {
                (0..rng.next() % 64)
                    .map(|_| b"*$\r\n0123456789-abc"[rng.next() as usize % 18])
                    .collect()
            } else {
                let mut v = valid.to_vec();
                for _ in 0..1 + rng.next() % 3 {
                    let i = rng.next() as usize % v.len();
                    v[i] = rng.next() as u8;
                }
                v.truncate(rng.next() as usize % (v.len() + 1));
                v
            };
            if let Ok(Some((_, used))) = parse_command(&input) {
                assert!(used <= input.len() && used > 0, "round {round}");
            }
        }
    }
}
