//! Standard base64 (RFC 4648 section 4: `A-Z a-z 0-9 + /`, `=` padding): the WebSocket
//! handshake's `Sec-WebSocket-Key` / `-Accept`, `Authorization: Basic` on the HTTP API, and
//! the `{SHA}` hashes of the users file. Written here rather than pulled in as a crate: a few
//! short strings encoded and decoded, nothing more.
//!
//! Data shape: `encode` appends to a caller's `Vec<u8>`; `decode` writes into a caller's
//! fixed slice and fails (never panics) on anything that is not canonical padded base64
//! of at most that many bytes.
//! Uses: nothing.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Appends the padded base64 form of `input` to `out`.
pub fn encode(input: &[u8], out: &mut Vec<u8>) {
    let sym = |v: u32| ALPHABET[(v & 63) as usize];
    for chunk in input.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let v = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(sym(v >> 18));
        out.push(sym(v >> 12));
        out.push(if chunk.len() > 1 { sym(v >> 6) } else { b'=' });
        out.push(if chunk.len() > 2 { sym(v) } else { b'=' });
    }
}

fn value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decodes padded base64 into `out`, returning how many bytes it wrote. `None` when the
/// input's length is not a multiple of 4, a character is outside the alphabet, padding is
/// anywhere but the end, the unused low bits of the last symbol are not zero (so each byte
/// string has exactly one accepted spelling), or the bytes do not fit in `out`.
pub fn decode(input: &[u8], out: &mut [u8]) -> Option<usize> {
    if !input.len().is_multiple_of(4) {
        return None;
    }
    let mut n = 0usize;
    let quads = input.len() / 4;
    for (qi, quad) in input.chunks_exact(4).enumerate() {
        let last = qi + 1 == quads;
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut v = 0u32;
        for &c in quad.iter().take(4 - pad) {
            v = (v << 6) | value(c)?;
        }
        v <<= 6 * pad as u32;
        let bytes = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        let keep = 3 - pad;
        // Non-canonical: bits beyond the last whole byte must be zero.
        if bytes.iter().skip(keep).any(|&b| b != 0) {
            return None;
        }
        for &b in bytes.iter().take(keep) {
            *out.get_mut(n)? = b;
            n += 1;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &[u8]) -> String {
        let mut v = Vec::new();
        encode(s, &mut v);
        String::from_utf8(v).unwrap()
    }

    fn dec(s: &str) -> Option<Vec<u8>> {
        let mut buf = [0u8; 32];
        decode(s.as_bytes(), &mut buf).map(|n| buf[..n].to_vec())
    }

    #[test]
    fn rfc4648_vectors_both_ways() {
        let v = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in v {
            assert_eq!(enc(plain.as_bytes()), coded);
            assert_eq!(dec(coded).as_deref(), Some(plain.as_bytes()));
        }
        let all: Vec<u8> = (0..=255).collect();
        let mut big = [0u8; 256];
        let e = enc(&all);
        assert_eq!(decode(e.as_bytes(), &mut big), Some(256));
        assert_eq!(&big[..], &all[..]);
    }

    #[test]
    fn rejects_what_is_not_canonical() {
        for bad in [
            "Zg=", "Zg", "Z===", "Zh==", "Zm9=", "Zg==Zg==", "Zm 9v", "Zm9v\n", "Zm-v", "====",
            "=Zg=",
        ] {
            assert_eq!(dec(bad), None, "{bad:?}");
        }
        // Too long for the output slice.
        let mut small = [0u8; 2];
        assert_eq!(decode(b"Zm9v", &mut small), None);
    }
}
