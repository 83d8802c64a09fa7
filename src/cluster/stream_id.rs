//! Redis stream entry IDs and the global cursors derived from them.
//!
//! Job: in cluster mode every message's cursor comes from its entry ID in the shared
//! stream, so that all workers (and all nodes) give a message the same cursor, and a
//! cursor a client resumes from maps back to a stream position to read after.
//!
//! Data shape: an entry ID is `<ms>-<seq>`, two u64s, ordered by `(ms, seq)`. Its cursor
//! is `Cursor::Gen { secs: ms / 1000, frac: (ms % 1000) * 10^11 + seq }`, printed as
//! `secs.` then 14 decimals: the 3 millisecond digits, then `seq` in 11 digits. So it has
//! the shape of the cursors `cursor::CursorGen` makes today (25 characters for current
//! dates), and `(ms, seq) -> (secs, frac)` is strictly increasing, so `Cursor::cmp_value`
//! orders derived cursors exactly as Redis orders the entries, and compares them with
//! client text cursors by decimal value like any other cursor.
//!
//! Limits: `seq` must be below 10^11. Redis numbers entries within one millisecond from
//! 0, so that is never reached by `XADD *`; an entry added with an explicit larger ID is
//! refused (`IdError::SeqTooLarge`) rather than wrapped into the next millisecond, where
//! it would collide with or pass later entries. Uses: `cursor`.

use crate::cursor::Cursor;
use std::fmt;
use std::io::Write;

/// 10^11: the sequence part's share of the 14 fractional digits.
pub const SEQ_LIMIT: u64 = 100_000_000_000;
/// Fractional units (10^-14 s) in one millisecond.
const MS_UNITS: u64 = SEQ_LIMIT;

/// A stream entry ID, `<ms>-<seq>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

/// Why an entry ID or cursor does not map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdError {
    /// Not `<digits>-<digits>` with both parts fitting a u64.
    Malformed,
    /// The sequence part does not fit the 11 digits a cursor has for it.
    SeqTooLarge(StreamId),
    /// A cursor whose seconds part is too large for a millisecond count in a u64.
    CursorTooLarge,
    /// A cursor that is not a decimal (`\d+(\.\d+)?`).
    NotDecimal,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Malformed => f.write_str("malformed stream entry ID (want <ms>-<seq>)"),
            IdError::SeqTooLarge(id) => write!(
                f,
                "stream entry ID {id} has a sequence number of 11 or more digits; it has no cursor"
            ),
            IdError::CursorTooLarge => f.write_str("cursor too large for a stream entry ID"),
            IdError::NotDecimal => f.write_str("cursor is not a decimal number"),
        }
    }
}

impl std::error::Error for IdError {}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl StreamId {
    /// The ID before every entry (`XREAD ... STREAMS key 0-0` reads from the start).
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    /// Parses `<ms>-<seq>` as Redis sends it (both parts plain decimal, no sign).
    pub fn parse(bytes: &[u8]) -> Result<StreamId, IdError> {
        let dash = bytes
            .iter()
            .position(|&b| b == b'-')
            .ok_or(IdError::Malformed)?;
        let ms = parse_u64(bytes.get(..dash).unwrap_or_default())?;
        let seq = parse_u64(bytes.get(dash.saturating_add(1)..).unwrap_or_default())?;
        Ok(StreamId { ms, seq })
    }

    /// Appends the `<ms>-<seq>` text (for XREAD / XRANGE arguments).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{}-{}", self.ms, self.seq);
    }

    /// The cursor of this entry, or `SeqTooLarge` when `seq` has 11 digits or more.
    pub fn cursor(&self) -> Result<Cursor, IdError> {
        if self.seq >= SEQ_LIMIT {
            return Err(IdError::SeqTooLarge(*self));
        }
        // (ms % 1000) * 10^11 + seq < 1000 * 10^11 = 10^14: no overflow, frac in range.
        let frac = (self.ms % 1000) * MS_UNITS + self.seq;
        Ok(Cursor::Gen {
            secs: self.ms / 1000,
            frac,
        })
    }

    /// The last entry ID whose cursor is not after `cursor`: reading the stream after it
    /// (`XREAD STREAMS key <id>`, exclusive) yields exactly the entries whose cursors are
    /// after `cursor`. For a cursor made by `StreamId::cursor` this is that ID again.
    /// Fraction digits past the 14th only round down, which is what "not after" needs.
    pub fn floor_of(cursor: &Cursor) -> Result<StreamId, IdError> {
        let (secs, frac) = match cursor {
            Cursor::Gen { secs, frac } | Cursor::Client { secs, frac } => (*secs, *frac),
            Cursor::Text(t) => split_text(t.as_bytes())?,
        };
        let ms = secs
            .checked_mul(1000)
            .and_then(|m| m.checked_add(frac / MS_UNITS))
            .ok_or(IdError::CursorTooLarge)?;
        Ok(StreamId {
            ms,
            seq: frac % MS_UNITS,
        })
    }
}

/// `secs` and the first 14 fraction digits (padded with zeros) of a decimal text cursor.
fn split_text(t: &[u8]) -> Result<(u64, u64), IdError> {
    if !crate::cursor::is_decimal(t) {
        return Err(IdError::NotDecimal);
    }
    let (int, frac) = match t.iter().position(|&c| c == b'.') {
        Some(p) => (
            t.get(..p).unwrap_or_default(),
            t.get(p.saturating_add(1)..).unwrap_or_default(),
        ),
        None => (t, &[][..]),
    };
    let digits = int.iter().skip_while(|&&c| c == b'0');
    let mut secs: u64 = 0;
    for &d in digits {
        secs = secs
            .checked_mul(10)
            .and_then(|s| s.checked_add(u64::from(d - b'0')))
            .ok_or(IdError::CursorTooLarge)?;
    }
    let mut units: u64 = 0;
    for i in 0..14 {
        let d = frac.get(i).map_or(0, |&c| u64::from(c - b'0'));
        // At most 14 digits: below 10^14, no overflow.
        units = units * 10 + d;
    }
    Ok((secs, units))
}

fn parse_u64(digits: &[u8]) -> Result<u64, IdError> {
    if digits.is_empty() {
        return Err(IdError::Malformed);
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(IdError::Malformed);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(IdError::Malformed)?;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    fn id(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    fn text(s: &str) -> Cursor {
        Cursor::parse_client(s.as_bytes()).unwrap()
    }

    #[test]
    fn parses_and_prints_entry_ids() {
        assert_eq!(
            StreamId::parse(b"1700000000123-7"),
            Ok(id(1_700_000_000_123, 7))
        );
        assert_eq!(StreamId::parse(b"0-0"), Ok(StreamId::ZERO));
        let max = StreamId::parse(b"18446744073709551615-18446744073709551615").unwrap();
        assert_eq!(max, id(u64::MAX, u64::MAX));
        for bad in [
            &b""[..],
            b"-",
            b"1-",
            b"-1",
            b"1",
            b"1-2-3",
            b"a-1",
            b"1-+2",
            b" 1-2",
            b"18446744073709551616-0",
            b"0-18446744073709551616",
        ] {
            assert_eq!(StreamId::parse(bad), Err(IdError::Malformed), "{bad:?}");
        }
        let mut out = Vec::new();
        id(1_700_000_000_123, 42).write_to(&mut out);
        assert_eq!(out, b"1700000000123-42");
        assert_eq!(id(5, 6).to_string(), "5-6");
    }

    #[test]
    fn cursor_has_todays_shape() {
        let c = id(1_700_000_000_123, 42).cursor().unwrap();
        assert_eq!(c.to_string(), "1700000000.12300000000042");
        assert_eq!(c.to_string().len(), 25);
        assert_eq!(
            id(1_700_000_000_000, 0).cursor().unwrap().to_string(),
            "1700000000.00000000000000"
        );
        assert_eq!(
            id(1_700_000_000_999, SEQ_LIMIT - 1)
                .cursor()
                .unwrap()
                .to_string(),
            "1700000000.99999999999999"
        );
        assert_eq!(
            StreamId::ZERO.cursor().unwrap().to_string(),
            "0.00000000000000"
        );
        // The largest ms still maps (secs = u64::MAX / 1000).
        assert!(id(u64::MAX, 0).cursor().is_ok());
    }

    #[test]
    fn seq_too_large_is_refused_not_wrapped() {
        let big = id(1_700_000_000_123, SEQ_LIMIT);
        assert_eq!(big.cursor().err(), Some(IdError::SeqTooLarge(big)));
        assert_eq!(
            id(1, u64::MAX).cursor().err(),
            Some(IdError::SeqTooLarge(id(1, u64::MAX)))
        );
        assert!(IdError::SeqTooLarge(big)
            .to_string()
            .contains("1700000000123-100000000000"));
    }

    #[test]
    fn cursor_order_is_stream_order() {
        let ids = [
            id(0, 0),
            id(0, 1),
            id(999, SEQ_LIMIT - 1),
            id(1000, 0),
            id(1_700_000_000_123, 0),
            id(1_700_000_000_123, 1),
            id(1_700_000_000_123, 9),
            id(1_700_000_000_123, 10),
            id(1_700_000_000_123, SEQ_LIMIT - 1),
            id(1_700_000_000_124, 0),
            id(1_700_000_000_999, 5),
            id(1_700_000_001_000, 0),
            id(1_700_000_001_001, 0),
            id(10_000_000_000_000, 0),
        ];
        for (i, a) in ids.iter().enumerate() {
            for (j, b) in ids.iter().enumerate() {
                let (ca, cb) = (a.cursor().unwrap(), b.cursor().unwrap());
                assert_eq!(ca.cmp_value(&cb), i.cmp(&j), "{a} vs {b}");
                // Same order through the text form, as a client would send it back.
                let (ta, tb) = (text(&ca.to_string()), text(&cb.to_string()));
                assert_eq!(ta.cmp_value(&tb), i.cmp(&j), "{ca} vs {cb}");
                assert_eq!(ca.cmp_value(&tb), i.cmp(&j));
            }
        }
    }

    #[test]
    fn compares_with_todays_generated_and_client_cursors() {
        let c = id(1_700_000_000_123, 5).cursor().unwrap();
        let gen = Cursor::Gen {
            secs: 1_700_000_000,
            frac: 12_299_999_999_999,
        };
        assert!(c.is_after(&gen));
        assert!(c.is_after(&text("1700000000.123")));
        assert!(!c.is_after(&text("1700000000.12300000000005")));
        assert!(!c.is_after(&text("1700000000.123000000000050000")));
        assert!(c.is_after(&text("1700000000.1230000000000499")));
        assert!(c.is_after(&text("0")));
        assert_eq!(c.cmp_value(&text("1700000001")), Ordering::Less);
    }

    #[test]
    fn round_trip_to_the_stream_id() {
        for i in [
            id(0, 0),
            id(1_700_000_000_123, 0),
            id(1_700_000_000_123, 42),
            id(1_700_000_000_999, SEQ_LIMIT - 1),
            id(u64::MAX, 3),
        ] {
            let c = i.cursor().unwrap();
            assert_eq!(StreamId::floor_of(&c), Ok(i));
            // And through the text a client echoes back.
            assert_eq!(StreamId::floor_of(&text(&c.to_string())), Ok(i));
        }
    }

    #[test]
    fn floor_of_other_cursors() {
        // Short fractions are padded; long ones round down.
        assert_eq!(
            StreamId::floor_of(&text("1700000000.5")),
            Ok(id(1_700_000_000_500, 0))
        );
        assert_eq!(
            StreamId::floor_of(&text("1700000000")),
            Ok(id(1_700_000_000_000, 0))
        );
        assert_eq!(
            StreamId::floor_of(&text("1700000000.123000000000059")),
            Ok(id(1_700_000_000_123, 5))
        );
        assert_eq!(StreamId::floor_of(&text("007.001")), Ok(id(7_001, 0)));
        // Today's generated cursors (microseconds + 8 digits) map too.
        let gen = Cursor::Gen {
            secs: 1_795_400_390,
            frac: 30_520_000_100_000,
        };
        assert_eq!(
            StreamId::floor_of(&gen),
            Ok(id(1_795_400_390_305, 20_000_100_000))
        );
        assert_eq!(
            StreamId::floor_of(&text("99999999999999999999")),
            Err(IdError::CursorTooLarge)
        );
        assert_eq!(
            StreamId::floor_of(&text("18446744073709552")),
            Err(IdError::CursorTooLarge)
        );
        assert_eq!(
            StreamId::floor_of(&Cursor::Text("1e5".into())),
            Err(IdError::NotDecimal)
        );
        // Floor property: the floor's cursor is never after the cursor, and the next
        // possible entry's is.
        for t in [
            "1700000000.5",
            "1700000000.123000000000059",
            "3",
            "0.00000000000001",
        ] {
            let c = text(t);
            let f = StreamId::floor_of(&c).unwrap();
            assert!(!f.cursor().unwrap().is_after(&c), "{t}");
            assert!(id(f.ms, f.seq + 1).cursor().unwrap().is_after(&c), "{t}");
        }
    }
}
