//! WebSocket frames (RFC 6455 section 5): the incremental decoder for client frames and the
//! encoders for server frames.
//!
//! Data shape: `decode(buf, max_payload)` looks at the start of `buf` (whatever has arrived)
//! and returns `Ok(None)` when no whole frame is there yet, `Ok(Some((frame, consumed)))`
//! with the payload unmasked into its own `Vec`, or `Err(Close)`: the code and reason to
//! close with. It fails as early as the bytes allow (a bad first byte is refused before
//! the rest arrives) and never waits for a payload it would refuse. The encoders append
//! unmasked server frames to a caller's `Vec<u8>`, so one encoded frame can be written to
//! many listeners. Message-level rules (fragments, UTF-8, close payloads) are `message`'s.
//! Uses: nothing internal.

/// Close status codes (RFC 6455 section 7.4.1) this server sends.
pub mod code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown, restart).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error: a malformed frame or a broken fragment sequence.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the endpoint cannot accept: binary messages here.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text message that is not UTF-8 (or a close reason that is not).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message that breaks policy: here, a text message that is not a valid command.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame or message over the size limit (WAIT_MAXLEN).
    pub const TOO_BIG: u16 = 1009;
    /// The server hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// Why the connection must close: send `close(code, reason)`, then close it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
}

impl Close {
    pub const fn new(code: u16, reason: &'static str) -> Close {
        Close { code, reason }
    }
}

const RSV_SET: Close = Close::new(code::PROTOCOL_ERROR, "reserved bits set");
const BAD_OPCODE: Close = Close::new(code::PROTOCOL_ERROR, "unknown opcode");
const UNMASKED: Close = Close::new(code::PROTOCOL_ERROR, "client frames must be masked");
const FRAGMENTED_CONTROL: Close = Close::new(code::PROTOCOL_ERROR, "fragmented control frame");
const LONG_CONTROL: Close = Close::new(code::PROTOCOL_ERROR, "control frame over 125 bytes");
const BAD_LENGTH: Close = Close::new(code::PROTOCOL_ERROR, "64-bit length with the top bit set");
const TOO_BIG: Close = Close::new(code::TOO_BIG, "frame too big");

/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask.
pub const MAX_HEADER: usize = 14;

/// The largest control-frame payload.
pub const MAX_CONTROL: usize = 125;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(b: u8) -> Option<Opcode> {
        Some(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// One decoded client frame, payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: Opcode,
    pub payload: Vec<u8>,
}

fn array<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
}

/// Decodes the client frame at the start of `buf`. `max_payload` bounds one frame's payload
/// (the caller passes WAIT_MAXLEN); longer frames are refused with 1009 as soon as their
/// length is known. See the module doc for the results.
pub fn decode(buf: &[u8], max_payload: usize) -> Result<Option<(Frame, usize)>, Close> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(RSV_SET);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(BAD_OPCODE)?;
    if opcode.is_control() && !fin {
        return Err(FRAGMENTED_CONTROL);
    }
    let Some(&b1) = buf.get(1) else {
        return Ok(None);
    };
    if b1 & 0x80 == 0 {
        return Err(UNMASKED);
    }
    let len7 = b1 & 0x7F;
    if opcode.is_control() && usize::from(len7) > MAX_CONTROL {
        return Err(LONG_CONTROL);
    }
    let (len, mask_at) = match len7 {
        126 => match array::<2>(buf, 2) {
            Some(b) => (u64::from(u16::from_be_bytes(b)), 4),
            None => return Ok(None),
        },
        127 => match array::<8>(buf, 2) {
            Some(b) => {
                let len = u64::from_be_bytes(b);
                if len >> 63 != 0 {
                    return Err(BAD_LENGTH);
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    // Lengths are taken as sent, minimal encoding or not (RFC 6455 asks it of senders only).
    let len = match usize::try_from(len) {
        Ok(l) if l <= max_payload => l,
        _ => return Err(TOO_BIG),
    };
    let Some(mask) = array::<4>(buf, mask_at) else {
        return Ok(None);
    };
    let start = mask_at + 4;
    let end = start.checked_add(len).ok_or(TOO_BIG)?;
    let Some(masked) = buf.get(start..end) else {
        return Ok(None);
    };
    let payload = masked
        .iter()
        .zip(mask.iter().cycle())
        .map(|(b, m)| b ^ m)
        .collect();
    Ok(Some((
        Frame {
            fin,
            opcode,
            payload,
        },
        end,
    )))
}

/// Appends a server frame header (never masked) for a payload of `len` bytes.
pub fn header(fin: bool, opcode: Opcode, len: usize, out: &mut Vec<u8>) {
    out.push(if fin { 0x80 } else { 0 } | opcode.bits());
    match len {
        0..=125 => out.push(len as u8),
        126..=0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
}

/// Appends the header of a whole text message of `len` bytes; the caller appends exactly
/// `len` bytes of UTF-8 after it (for a message built from several pieces).
pub fn text_header(len: usize, out: &mut Vec<u8>) {
    header(true, Opcode::Text, len, out);
}

/// Appends a whole text message. `payload` must be UTF-8 (JSON from storage is what the
/// server sends; the caller keeps that promise, browsers close on anything else).
pub fn text(payload: &[u8], out: &mut Vec<u8>) {
    text_header(payload.len(), out);
    out.extend_from_slice(payload);
}

fn control(opcode: Opcode, payload: &[u8], out: &mut Vec<u8>) {
    let payload = payload.get(..MAX_CONTROL).unwrap_or(payload);
    header(true, opcode, payload.len(), out);
    out.extend_from_slice(payload);
}

/// Appends a ping (payload cut to 125 bytes).
pub fn ping(payload: &[u8], out: &mut Vec<u8>) {
    control(Opcode::Ping, payload, out);
}

/// Appends a pong (payload cut to 125 bytes): the reply to a ping carries its payload.
pub fn pong(payload: &[u8], out: &mut Vec<u8>) {
    control(Opcode::Pong, payload, out);
}

/// Appends a close frame with `code` and `reason`, the reason cut to 123 bytes on a
/// character boundary. `code` must be one a peer may receive (the `code` constants,
/// or a code echoed from a client's close, which `message` has checked).
pub fn close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let mut cut = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let reason = reason.get(..cut).unwrap_or_default();
    header(true, Opcode::Close, 2 + reason.len(), out);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
}

/// Appends a close frame without a status code: the reply to a client's close that had none.
pub fn close_empty(out: &mut Vec<u8>) {
    header(true, Opcode::Close, 0, out);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A client frame: the first byte as given, `payload` masked with `mask`, the length in
    /// the 7-, 16- or 64-bit form (`form` 0, 16 or 64; 0 means the minimal form).
    pub(crate) fn client(b0: u8, payload: &[u8], mask: [u8; 4], form: u8) -> Vec<u8> {
        let mut v = vec![b0];
        let n = payload.len();
        match (form, n) {
            (0, 0..=125) => v.push(0x80 | n as u8),
            (0 | 16, 0..=0xFFFF) => {
                v.push(0x80 | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => {
                v.push(0x80 | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        v
    }

    const M: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// Every prefix of `bytes` is either "not yet" or the same verdict as the whole.
    fn every_split(bytes: &[u8], max: usize) -> Result<Option<(Frame, usize)>, Close> {
        let whole = decode(bytes, max);
        for cut in 0..bytes.len() {
            match decode(&bytes[..cut], max) {
                Ok(None) => {}
                Err(e) => assert_eq!(Err(e), whole, "prefix of {cut} bytes"),
                Ok(Some(f)) => panic!("whole frame from a {cut}-byte prefix: {f:?}"),
            }
        }
        whole
    }

    #[test]
    fn rfc_masked_hello() {
        let bytes = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        let (f, n) = every_split(&bytes, 5120).unwrap().unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(
            (f.fin, f.opcode, &f.payload[..]),
            (true, Opcode::Text, &b"Hello"[..])
        );
        // Trailing bytes (the next frame) are left alone.
        let mut two = bytes.to_vec();
        two.extend_from_slice(&bytes[..3]);
        assert_eq!(decode(&two, 5120).unwrap().unwrap().1, bytes.len());
    }

    #[test]
    fn lengths_in_7_16_and_64_bits() {
        for (n, form, header_len) in [
            (0, 0, 6),
            (125, 0, 6),
            (126, 0, 8),
            (0xFFFF, 0, 8),
            (0x1_0000, 0, 14),
            (5, 16, 8),
            (5, 64, 14),
        ] {
            let payload: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let bytes = client(0x82, &payload, M, form);
            assert_eq!(bytes.len(), header_len + n);
            let (f, used) = every_split(&bytes, 0x1_0000).unwrap().unwrap();
            assert_eq!((used, f.payload), (bytes.len(), payload));
        }
    }

    #[test]
    fn each_error_case() {
        let err = |bytes: &[u8], max: usize| every_split(bytes, max).unwrap_err().code;
        assert_eq!(err(&[0x81, 0x05, 1, 2, 3, 4, 5], 10), code::PROTOCOL_ERROR); // unmasked
        for rsv in [0x40, 0x20, 0x10] {
            assert_eq!(
                err(&client(0x81 | rsv, b"x", M, 0), 10),
                code::PROTOCOL_ERROR
            );
        }
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                err(&client(0x80 | op, b"x", M, 0), 10),
                code::PROTOCOL_ERROR
            );
        }
        for op in [0x8, 0x9, 0xA] {
            assert_eq!(err(&client(op, b"", M, 0), 10), code::PROTOCOL_ERROR); // no FIN
            let long = vec![b'p'; 126];
            assert_eq!(
                err(&client(0x80 | op, &long, M, 0), 1000),
                code::PROTOCOL_ERROR
            );
            // A short control payload in a long length form is still over 125 by its byte.
            assert_eq!(
                err(&client(0x80 | op, b"x", M, 16), 1000),
                code::PROTOCOL_ERROR
            );
        }
        let mut top = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1];
        top.extend_from_slice(&M);
        assert_eq!(err(&top, usize::MAX), code::PROTOCOL_ERROR);
        let mut huge = vec![0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        huge.extend_from_slice(&M);
        assert_eq!(err(&huge, 5120), code::TOO_BIG);
        assert_eq!(decode(&huge, usize::MAX), Ok(None)); // waits; never allocates up front
        for form in [0, 16, 64] {
            assert_eq!(err(&client(0x81, &[b'a'; 11], M, form), 10), code::TOO_BIG);
            // The verdict comes before the payload does.
            let b = client(0x81, &[b'a'; 11], M, form);
            assert_eq!(decode(&b[..b.len() - 11], 10), Err(TOO_BIG));
        }
        // Exactly at the limit is fine.
        assert!(decode(&client(0x81, &[b'a'; 10], M, 0), 10)
            .unwrap()
            .is_some());
    }

    #[test]
    fn a_stream_of_frames_split_at_every_offset() {
        let frames = [
            client(0x01, b"Hel", M, 0),
            client(0x89, b"ping!", [1, 2, 3, 4], 0),
            client(0x80, b"lo", M, 16),
            client(0x8A, b"", M, 0),
            client(0x81, &[b'z'; 300], [9, 8, 7, 6], 0),
            client(0x88, &[0x03, 0xE8, b'b', b'y', b'e'], M, 0),
        ];
        let stream: Vec<u8> = frames.concat();
        let want: Vec<Frame> = frames
            .iter()
            .map(|f| decode(f, 5120).unwrap().unwrap().0)
            .collect();
        for cut in 0..=stream.len() {
            let mut got = Vec::new();
            let mut pending: Vec<u8> = stream[..cut].to_vec();
            let mut rest = &stream[cut..];
            loop {
                while let Some((f, n)) = decode(&pending, 5120).unwrap() {
                    got.push(f);
                    pending.drain(..n);
                }
                if rest.is_empty() {
                    break;
                }
                pending.extend_from_slice(rest);
                rest = &[];
            }
            assert!(pending.is_empty());
            assert_eq!(got, want, "cut at {cut}");
        }
    }

    /// A server frame made into a client one (mask bit and key inserted), for round trips.
    fn masked(server: &[u8]) -> Vec<u8> {
        let (b0, b1) = (server[0], server[1]);
        let ext = match b1 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mut v = vec![b0, b1 | 0x80];
        v.extend_from_slice(&server[2..2 + ext]);
        v.extend_from_slice(&M);
        v.extend(
            server[2 + ext..]
                .iter()
                .zip(M.iter().cycle())
                .map(|(b, m)| b ^ m),
        );
        v
    }

    #[test]
    fn encoders() {
        for n in [0usize, 125, 126, 0xFFFF, 0x1_0000] {
            let payload = vec![b'a'; n];
            let mut out = vec![b'!']; // appends, keeps what was there
            text(&payload, &mut out);
            let head = match n {
                0..=125 => vec![0x81, n as u8],
                126..=0xFFFF => vec![0x81, 126, (n >> 8) as u8, n as u8],
                _ => vec![0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0],
            };
            assert_eq!(&out[1..1 + head.len()], &head[..], "{n}");
            assert_eq!(out.len(), 1 + head.len() + n);
            let (f, _) = decode(&masked(&out[1..]), 1 << 20).unwrap().unwrap();
            assert_eq!((f.opcode, f.payload), (Opcode::Text, payload));
        }
        let mut out = Vec::new();
        ping(b"abc", &mut out);
        pong(&[b'x'; 200], &mut out);
        assert_eq!(&out[..5], &[0x89, 3, b'a', b'b', b'c']);
        assert_eq!(&out[5..7], &[0x8A, 125]);
        assert_eq!(out.len(), 5 + 2 + 125);

        let mut out = Vec::new();
        close(code::TOO_BIG, "big", &mut out);
        assert_eq!(out, [0x88, 5, 0x03, 0xF1, b'b', b'i', b'g']);
        // The reason is cut on a character boundary to fit 125 bytes.
        let mut out = Vec::new();
        close(code::NORMAL, &"é".repeat(100), &mut out);
        assert_eq!(out[1], 124);
        let (f, _) = decode(&masked(&out), 5120).unwrap().unwrap();
        assert!(std::str::from_utf8(&f.payload[2..]).is_ok());
        let mut out = Vec::new();
        close_empty(&mut out);
        assert_eq!(out, [0x88, 0]);
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut buf = Vec::new();
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf.clear();
            buf.extend_from_slice(&x.to_le_bytes());
            buf.extend_from_slice(&x.rotate_left(17).to_be_bytes());
            buf.truncate((x >> 59) as usize);
            for max in [0, 5, 5120, usize::MAX] {
                if let Ok(Some((_, n))) = decode(&buf, max) {
                    assert!(n <= buf.len());
                }
            }
        }
    }
}
