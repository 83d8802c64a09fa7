//! RESP, the Redis wire protocol: an incremental reply decoder and a command encoder.
//!
//! Job: turn the bytes a Redis server sends into `Value`s, one complete reply at a time,
//! and write commands (arrays of bulk strings) into a caller's buffer.
//!
//! Data shape: `parse(buf)` looks at the start of `buf` only. `Ok(None)` means the reply
//! is not complete yet (read more and call again with the grown buffer); `Ok(Some((v, n)))`
//! means `v` used the first `n` bytes; `Err` means the bytes are not RESP (or break a
//! limit) and the link must be dropped: nothing after them can be trusted. The decoder
//! scans before it builds, so an incomplete reply allocates nothing, and `parse_hint`
//! tells how many bytes the buffer needs at least before a new attempt can succeed (a
//! large bulk string is then not re-scanned for every read).
//!
//! Protocol choice: the link speaks RESP2 (it never sends `HELLO 3`), so Redis answers in
//! RESP2 only. The decoder still accepts the RESP3 types (null, double, boolean, blob
//! error, verbatim string, big number, map, set, push) because they cost a few lines and a
//! proxy or a later `HELLO 3` then does not drop the link; attributes (`|`) are refused.
//!
//! Limits: every length is checked against `Limits` before it is used, a length prefix
//! never preallocates more than a few elements, nesting is bounded, and all arithmetic on
//! lengths is checked. Uses: nothing internal.

use std::fmt;

/// A decoded reply. RESP3 types map onto the nearest RESP2 shape where one exists.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `+OK`
    Simple(Vec<u8>),
    /// `-ERR ...` or RESP3 `!` blob error.
    Error(Vec<u8>),
    /// `:42`
    Int(i64),
    /// `$3\r\nfoo` or RESP3 `=` verbatim string (its `txt:` prefix removed).
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or RESP3 `_`.
    Nil,
    /// `*N` or RESP3 `~` set.
    Array(Vec<Value>),
    /// RESP3 `%` map, pairs in wire order.
    Map(Vec<(Value, Value)>),
    /// RESP3 `,` double.
    Double(f64),
    /// RESP3 `#t` / `#f`.
    Bool(bool),
    /// RESP3 `(` big number: an optional `-` and digits, kept as text.
    BigNumber(Vec<u8>),
    /// RESP3 `>` out-of-band push.
    Push(Vec<Value>),
}

impl Value {
    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) | Value::Simple(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of an array (or set or push).
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) | Value::Push(a) => Some(a),
            _ => None,
        }
    }

    /// The error text when this is an error reply.
    pub fn error_text(&self) -> Option<&[u8]> {
        match self {
            Value::Error(e) => Some(e),
            _ => None,
        }
    }
}

/// Bounds on what one reply may claim or contain.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest bulk string (Redis's own `proto-max-bulk-len` default is 512 MB).
    pub max_bulk: usize,
    /// Most elements of one array, set, push or map (pairs count twice).
    pub max_elems: usize,
    /// Deepest nesting of aggregates.
    pub max_depth: usize,
    /// Longest `+`, `-`, `:`, `,`, `(` line (CRLF excluded).
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bulk: 64 << 20,
            max_elems: 1 << 20,
            max_depth: 32,
            max_line: 64 << 10,
        }
    }
}

/// Why bytes are not acceptable RESP. Any of these ends the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The first byte of a value is not a known type.
    BadType(u8),
    /// A length or integer line is not a decimal number of the allowed range.
    BadNumber,
    /// A line has a bare CR or LF, or a bulk payload is not followed by CRLF.
    BadFraming,
    /// A bulk string is longer than `Limits::max_bulk`.
    BulkTooLong(u64),
    /// An aggregate claims more than `Limits::max_elems` elements.
    TooManyElements(u64),
    /// Aggregates nest deeper than `Limits::max_depth`.
    TooDeep,
    /// A line runs past `Limits::max_line` without CRLF.
    LineTooLong,
    /// A boolean, double, big number or verbatim string has a malformed body.
    BadScalar,
    /// RESP3 attributes are not supported.
    Attribute,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::BadType(b) => write!(f, "unknown RESP type byte 0x{b:02x}"),
            Error::BadNumber => f.write_str("malformed RESP length or integer"),
            Error::BadFraming => f.write_str("malformed RESP framing (CRLF expected)"),
            Error::BulkTooLong(n) => write!(f, "RESP bulk string of {n} bytes is over the limit"),
            Error::TooManyElements(n) => {
                write!(f, "RESP aggregate of {n} elements is over the limit")
            }
            Error::TooDeep => f.write_str("RESP aggregates nest too deeply"),
            Error::LineTooLong => f.write_str("RESP line too long"),
            Error::BadScalar => f.write_str("malformed RESP3 scalar"),
            Error::Attribute => f.write_str("RESP3 attributes are not supported"),
        }
    }
}

impl std::error::Error for Error {}

/// What `parse_hint` found.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A whole reply and the number of bytes it used.
    Complete(Value, usize),
    /// Not complete: no attempt can succeed before the buffer holds `min_len` bytes.
    Incomplete { min_len: usize },
}

/// Decodes one reply from the start of `buf` with the default limits.
pub fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, Error> {
    parse_with(buf, &Limits::default())
}

/// Decodes one reply from the start of `buf` with the given limits.
pub fn parse_with(buf: &[u8], limits: &Limits) -> Result<Option<(Value, usize)>, Error> {
    match parse_hint(buf, limits)? {
        Parsed::Complete(v, n) => Ok(Some((v, n))),
        Parsed::Incomplete { .. } => Ok(None),
    }
}

/// Like `parse_with`, but an incomplete reply also tells how many bytes are needed at
/// least, so that a caller can skip attempts until that many have arrived.
pub fn parse_hint(buf: &[u8], limits: &Limits) -> Result<Parsed, Error> {
    // First a scan that builds nothing, then (only for a complete reply) the build.
    let mut scan = Decoder {
        buf,
        pos: 0,
        limits,
        build: false,
    };
    match scan.value(0)? {
        Step::More(min_len) => return Ok(Parsed::Incomplete { min_len }),
        Step::Done(_) => {}
    }
    let mut build = Decoder {
        buf,
        pos: 0,
        limits,
        build: true,
    };
    match build.value(0)? {
        Step::Done(v) => Ok(Parsed::Complete(v, build.pos)),
        // The scan saw a complete reply in the same bytes; kept total rather than assumed.
        Step::More(min_len) => Ok(Parsed::Incomplete { min_len }),
    }
}

/// One step of the decoder: a value, or "need at least this many bytes in all".
enum Step {
    Done(Value),
    More(usize),
}

/// Returns early with `Step::More` when a sub-step needs more bytes.
macro_rules! need {
    ($e:expr) => {
        match $e {
            Step::Done(v) => v,
            Step::More(n) => return Ok(Step::More(n)),
        }
    };
}

struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    /// False: only check framing and find the end; values are `Nil` placeholders.
    build: bool,
}

impl<'a> Decoder<'a> {
    fn value(&mut self, depth: usize) -> Result<Step, Error> {
        let Some(&kind) = self.buf.get(self.pos) else {
            return Ok(Step::More(self.pos.saturating_add(1)));
        };
        let start = self.pos;
        self.pos = start.saturating_add(1);
        let step = match kind {
            b'+' | b'-' | b'(' | b',' | b'#' | b'_' | b':' => self.line_value(kind)?,
            b'$' | b'!' | b'=' => self.blob(kind)?,
            b'*' | b'~' | b'>' | b'%' => self.aggregate(kind, depth)?,
            b'|' => return Err(Error::Attribute),
            other => return Err(Error::BadType(other)),
        };
        if let Step::More(_) = step {
            self.pos = start;
        }
        Ok(step)
    }

    /// The bytes up to the next CRLF (advancing past it), or `None` when it has not arrived.
    fn line(&mut self) -> Result<Option<&'a [u8]>, Error> {
        let buf: &'a [u8] = self.buf;
        let rest = buf.get(self.pos..).unwrap_or_default();
        let max = self.limits.max_line;
        let window = rest.get(..max.saturating_add(1)).unwrap_or(rest);
        let Some(i) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
            return if window.len() > max {
                Err(Error::LineTooLong)
            } else {
                Ok(None)
            };
        };
        if window.get(i) != Some(&b'\r') {
            return Err(Error::BadFraming);
        }
        match rest.get(i.saturating_add(1)) {
            None => Ok(None),
            Some(b'\n') => {
                self.pos = self.pos.saturating_add(i).saturating_add(2);
                Ok(Some(rest.get(..i).unwrap_or_default()))
            }
            Some(_) => Err(Error::BadFraming),
        }
    }

    fn line_value(&mut self, kind: u8) -> Result<Step, Error> {
        let build = self.build;
        let Some(line) = self.line()? else {
            return Ok(Step::More(self.buf.len().saturating_add(1)));
        };
        let v = match kind {
            b':' => Value::Int(parse_int(line)?),
            b'_' if line.is_empty() => Value::Nil,
            b'#' => match line {
                b"t" => Value::Bool(true),
                b"f" => Value::Bool(false),
                _ => return Err(Error::BadScalar),
            },
            b',' => Value::Double(parse_double(line)?),
            b'(' => {
                let digits = line.strip_prefix(b"-").unwrap_or(line);
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(Error::BadScalar);
                }
                owned(build, line, Value::BigNumber)
            }
            b'+' => owned(build, line, Value::Simple),
            b'-' => owned(build, line, Value::Error),
            _ => return Err(Error::BadScalar),
        };
        Ok(Step::Done(v))
    }

    /// `$`, `!` and `=`: a length line, that many bytes, CRLF.
    fn blob(&mut self, kind: u8) -> Result<Step, Error> {
        let Some(line) = self.line()? else {
            return Ok(Step::More(self.buf.len().saturating_add(1)));
        };
        let len = parse_int(line)?;
        if len == -1 && kind == b'$' {
            return Ok(Step::Done(Value::Nil));
        }
        let len = u64::try_from(len).map_err(|_| Error::BadNumber)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&n| n <= self.limits.max_bulk)
            .ok_or(Error::BulkTooLong(len))?;
        let end = self
            .pos
            .checked_add(len)
            .ok_or(Error::BulkTooLong(len as u64))?;
        let total = end.checked_add(2).ok_or(Error::BulkTooLong(len as u64))?;
        if self.buf.len() < total {
            return Ok(Step::More(total));
        }
        if self.buf.get(end..total) != Some(b"\r\n") {
            return Err(Error::BadFraming);
        }
        let body = self.buf.get(self.pos..end).unwrap_or_default();
        self.pos = total;
        let v = match kind {
            b'!' => owned(self.build, body, Value::Error),
            b'=' => {
                // `fmt:` then the text; the three-byte format is dropped.
                if body.get(3) != Some(&b':') {
                    return Err(Error::BadScalar);
                }
                owned(self.build, body.get(4..).unwrap_or_default(), Value::Bulk)
            }
            _ => owned(self.build, body, Value::Bulk),
        };
        Ok(Step::Done(v))
    }

    fn aggregate(&mut self, kind: u8, depth: usize) -> Result<Step, Error> {
        if depth >= self.limits.max_depth {
            return Err(Error::TooDeep);
        }
        let Some(line) = self.line()? else {
            return Ok(Step::More(self.buf.len().saturating_add(1)));
        };
        let n = parse_int(line)?;
        if n == -1 && kind == b'*' {
            return Ok(Step::Done(Value::Nil));
        }
        let n = u64::try_from(n).map_err(|_| Error::BadNumber)?;
        let elems = if kind == b'%' {
            n.checked_mul(2)
        } else {
            Some(n)
        };
        let elems = elems
            .and_then(|e| usize::try_from(e).ok())
            .filter(|&e| e <= self.limits.max_elems)
            .ok_or(Error::TooManyElements(n))?;
        // Each element takes at least 3 bytes; never trust the count for capacity.
        let cap = if self.build { elems.min(64) } else { 0 };
        let mut items = Vec::with_capacity(cap);
        for _ in 0..elems {
            let v = need!(self.value(depth.saturating_add(1))?);
            if self.build {
                items.push(v);
            }
        }
        if !self.build {
            return Ok(Step::Done(Value::Nil));
        }
        let v = match kind {
            b'%' => {
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Value::Map(pairs)
            }
            b'>' => Value::Push(items),
            _ => Value::Array(items),
        };
        Ok(Step::Done(v))
    }
}

fn owned(build: bool, bytes: &[u8], f: fn(Vec<u8>) -> Value) -> Value {
    if build {
        f(bytes.to_vec())
    } else {
        Value::Nil
    }
}

/// A signed decimal integer that fits an i64: `-?[0-9]+`, no `+`, no spaces.
fn parse_int(line: &[u8]) -> Result<i64, Error> {
    let (neg, digits) = match line.strip_prefix(b"-") {
        Some(d) => (true, d),
        None => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(Error::BadNumber);
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(Error::BadNumber);
        }
        let digit = i64::from(d - b'0');
        v = v.checked_mul(10).ok_or(Error::BadNumber)?;
        v = if neg {
            v.checked_sub(digit)
        } else {
            v.checked_add(digit)
        }
        .ok_or(Error::BadNumber)?;
    }
    Ok(v)
}

fn parse_double(line: &[u8]) -> Result<f64, Error> {
    let text = std::str::from_utf8(line).map_err(|_| Error::BadScalar)?;
    // Rust's parser takes "inf", "-inf" and "nan" as RESP3 spells them, but also forms
    // like "infinity" or "+1"; the first byte check keeps it to what Redis sends.
    let ok_start = matches!(line.first(), Some(b'-' | b'0'..=b'9' | b'i' | b'n' | b'.'));
    match text.parse::<f64>() {
        Ok(v) if ok_start => Ok(v),
        _ => Err(Error::BadScalar),
    }
}

/// Appends a command (an array of bulk strings) to `out`.
pub fn encode<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    write_len(out, b'*', args.len());
    for a in args {
        write_bulk(out, a.as_ref());
    }
}

/// Appends an array header `*N\r\n`; `N` bulk strings must follow (see `write_bulk`).
pub fn write_array_header(out: &mut Vec<u8>, n: usize) {
    write_len(out, b'*', n);
}

/// Appends one bulk string `$len\r\n<bytes>\r\n`.
pub fn write_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    write_len(out, b'$', bytes.len());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fn write_len(out: &mut Vec<u8>, kind: u8, n: usize) {
    use std::io::Write;
    out.push(kind);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{n}\r\n");
}

#[cfg(test)]
#[path = "resp_tests.rs"]
mod tests;
