//! The client side of a WebSocket (RFC 6455, version 13) as the loadtest needs it: the
//! upgrade request for a WAIT id list, the `Sec-WebSocket-Accept` the server must answer
//! with, and the framing (server frames unmasked, client frames masked).
//!
//! Structure: pure functions over byte slices. `parse_frame` never panics on what a server
//! sends: a length over the caller's cap, a masked server frame, reserved bits or a bad
//! control frame are errors, a partial frame is `Ok(None)`.
//!
//! Uses: sha1 (the accept key), `proto::wait_request` (the GET line); base64 is written
//! here (encoding only, a dozen lines).

use sha1::{Digest, Sha1};

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The GUID RFC 6455 appends to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A `Sec-WebSocket-Key`: 16 bytes from `seed`, base64 (24 characters).
pub fn key(seed: u64) -> String {
    // splitmix64: distinct seeds give distinct keys.
    let mut x = seed;
    let mut b = [0u8; 16];
    for chunk in b.chunks_mut(8) {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    base64(&b)
}

/// The `Sec-WebSocket-Accept` a server must answer `key` with.
pub fn accept(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64(&h.finalize())
}

/// The upgrade request: the long-poll GET with the WebSocket headers instead of `Accept`.
pub fn request(pairs: &[(Option<&str>, &str)], ncrnd: u64, key: &str) -> Vec<u8> {
    let get = crate::proto::wait_request(pairs, ncrnd);
    let line_end = crate::net::find(&get, b"\r\n").unwrap_or(get.len());
    let mut r = get.get(..line_end).unwrap_or_default().to_vec();
    r.extend_from_slice(
        format!(
            "\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        )
        .as_bytes(),
    );
    r
}

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// The first frame in `buf` and the bytes it took; `Ok(None)` until it is all there.
pub fn parse_frame(buf: &[u8], max_len: usize) -> Result<Option<(Frame, usize)>, String> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err("WebSocket: reserved bits set".into());
    }
    if b1 & 0x80 != 0 {
        return Err("WebSocket: masked frame from the server".into());
    }
    let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
    let (len, mut at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if opcode >= 8 && (len > 125 || !fin) {
        return Err("WebSocket: bad control frame".into());
    }
    if !matches!(
        opcode,
        OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(format!("WebSocket: unknown opcode {opcode}"));
    }
    if len > max_len as u64 {
        return Err(format!("WebSocket: frame of {len} bytes"));
    }
    let len = len as usize;
    let Some(payload) = buf.get(at..at + len) else {
        return Ok(None);
    };
    let payload = payload.to_vec();
    at += len;
    Ok(Some((
        Frame {
            fin,
            opcode,
            payload,
        },
        at,
    )))
}

/// A complete client frame: FIN set, masked with `mask`.
pub fn client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(0x80 | (opcode & 0x0F));
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_the_rfc_accept_example() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // RFC 6455 section 1.3.
        assert_eq!(
            accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let k = key(42);
        assert_eq!(k.len(), 24);
        assert!(k.ends_with("=="));
        assert_ne!(k, key(43));
    }

    #[test]
    fn upgrade_request() {
        let r = String::from_utf8(request(&[(Some("7"), "a"), (None, "b")], 3, "KEY")).unwrap();
        assert_eq!(
            r,
            "GET /?identifier=7:a,b&ncrnd=3 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: KEY\r\n\r\n"
        );
    }

    #[test]
    fn server_frames_whole_partial_and_bad() {
        // RFC 6455 section 5.7: an unmasked "Hello".
        let hello = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
        let (f, n) = parse_frame(&hello, 100).unwrap().unwrap();
        assert_eq!(
            (f.fin, f.opcode, f.payload.as_slice(), n),
            (true, 1, &b"Hello"[..], 7)
        );
        for cut in 0..hello.len() {
            assert_eq!(parse_frame(&hello[..cut], 100), Ok(None), "cut at {cut}");
        }
        // Fragments: "Hel" then "lo".
        let (f, _) = parse_frame(&[0x01, 0x03, 0x48, 0x65, 0x6c], 100)
            .unwrap()
            .unwrap();
        assert!(!f.fin);
        // 16-bit and 64-bit lengths.
        let mut big = vec![0x82, 126, 0x01, 0x00];
        big.extend(vec![7u8; 256]);
        let (f, n) = parse_frame(&big, 1000).unwrap().unwrap();
        assert_eq!((f.payload.len(), n), (256, 260));
        assert!(parse_frame(&big, 255).is_err(), "over the cap");
        let huge = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert!(parse_frame(&huge, 1 << 20).is_err());
        // Masked server frame, reserved bits, long or fragmented control frames.
        assert!(parse_frame(&[0x81, 0x85, 1, 2, 3, 4, 0], 100).is_err());
        assert!(parse_frame(&[0xC1, 0x00], 100).is_err());
        assert!(parse_frame(&[0x89, 126, 0, 126], 1000).is_err());
        assert!(parse_frame(&[0x09, 0x00], 100).is_err());
        assert!(parse_frame(&[0x83, 0x00], 100).is_err());
        // A ping with a body, and what follows it stays for the next call.
        let (f, n) = parse_frame(&[0x89, 0x02, b'h', b'i', 0x81], 100)
            .unwrap()
            .unwrap();
        assert_eq!(
            (f.opcode, f.payload.as_slice(), n),
            (OP_PING, &b"hi"[..], 4)
        );
    }

    #[test]
    fn client_frames_are_masked() {
        // RFC 6455 section 5.7: a masked "Hello".
        let f = client_frame(OP_TEXT, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(
            f,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let f = client_frame(OP_PONG, &[0u8; 300], [1, 2, 3, 4]);
        assert_eq!(&f[..4], &[0x8A, 0x80 | 126, 0x01, 0x2C]);
        assert_eq!(f.len(), 4 + 4 + 300);
        assert_eq!(f[8..12], [1, 2, 3, 4]);
    }
}
