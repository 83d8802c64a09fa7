//! Unit tests of cursors: parsing, exact comparison, echoing, generation.

use super::*;
use std::time::Duration;

fn t(s: &str) -> Cursor {
    Cursor::parse_client(s.as_bytes()).unwrap()
}

#[test]
fn parses_only_decimals() {
    for ok in ["0", "15", "12345.678", "007", "1.0"] {
        assert!(Cursor::parse_client(ok.as_bytes()).is_some(), "{ok}");
    }
    for bad in ["", ".5", "1.", "-1", "1e5", "1.2.3", "a", " 1", "1:2"] {
        assert!(Cursor::parse_client(bad.as_bytes()).is_none(), "{bad}");
    }
}

#[test]
fn compares_exactly() {
    assert!(t("10").is_after(&t("9")));
    assert!(!t("10").is_after(&t("10.000")));
    assert!(t("10.0000000000000000000001").is_after(&t("10")));
    assert!(t("007").cmp_value(&t("7")) == Ordering::Equal);
    assert!(t("12345678901234567890123").is_after(&t("12345678901234567890122.99")));
    let g = Cursor::Gen {
        secs: 1_700_000_000,
        frac: 1,
    };
    assert!(g.is_after(&t("1700000000")));
    assert!(!g.is_after(&t("1700000000.00000000000001")));
    assert!(t("1700000000.000000000000011").is_after(&g));
    assert!(t("20").cmp_value(&g) == Ordering::Less);
}

#[test]
fn echoes_client_text_and_formats_generated() {
    assert_eq!(t("12345.678").to_string(), "12345.678");
    assert_eq!(t("007").to_string(), "007");
    let g = Cursor::Gen {
        secs: 1_795_400_390,
        frac: 30_520_000_100_000,
    };
    assert_eq!(g.to_string(), "1795400390.30520000100000");
    let mut v = Vec::new();
    g.write_to(&mut v);
    assert_eq!(v, b"1795400390.30520000100000");
}

#[test]
fn generated_cursors_strictly_increase_and_survive_clock_steps() {
    let mut g = CursorGen::new();
    let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut prev = g.next(base);
    assert_eq!(prev.to_string().len(), 25);
    for i in 0..10_000u64 {
        // Same instant, later, and earlier (the clock stepped back).
        let wall = match i % 3 {
            0 => base,
            1 => base + Duration::from_micros(i),
            _ => base - Duration::from_secs(5),
        };
        let c = g.next(wall);
        assert!(c.is_after(&prev), "{c} <= {prev}");
        assert_eq!(c.to_string().len(), 25);
        prev = c;
    }
    let now = g.next(base + Duration::from_secs(100));
    assert!(now.to_string().starts_with("1700000100."));
}

#[test]
fn floor_keeps_cursors_above_a_snapshot_after_the_clock_went_back() {
    let mut g = CursorGen::new();
    let floor = Cursor::Gen {
        secs: 2_000_000_000,
        frac: 5,
    };
    g.raise_floor(&floor);
    assert_eq!(g.last().to_string(), "2000000000.00000000000005");
    let c = g.next(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    assert!(c.is_after(&floor), "{c}");
    // A lower floor changes nothing; a client's text cursor is not a floor.
    g.raise_floor(&Cursor::Gen { secs: 1, frac: 0 });
    g.raise_floor(&t("9999999999"));
    assert!(g.next(UNIX_EPOCH).is_after(&c));
    assert_eq!(
        wall_cursor(UNIX_EPOCH + Duration::from_micros(1_500_001)).to_string(),
        "1.50000100000000"
    );
    assert!(t("0").is_zero() && t("00.000").is_zero() && !t("0.1").is_zero());
    assert!(!g.last().is_from_client() && t("1").is_from_client());
}

#[test]
fn sequence_carries_into_seconds() {
    let mut g = CursorGen {
        last_secs: 5,
        last_frac: FRAC_UNITS - 1,
    };
    let c = g.next(UNIX_EPOCH);
    assert_eq!(c.to_string(), "6.00000000000000");
}

/// The comparison as it was before cursors were compared without formatting: print both,
/// then compare the texts as exact decimals (reference for the property tests).
fn old_cmp(a: &Cursor, b: &Cursor) -> Ordering {
    fn text(c: &Cursor) -> String {
        match c {
            Cursor::Gen { secs, frac } => format!("{secs}.{frac:014}"),
            other => other.to_string(),
        }
    }
    fn split(s: &str) -> (&str, &str) {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        (int.trim_start_matches('0'), frac.trim_end_matches('0'))
    }
    let (ta, tb) = (text(a), text(b));
    let ((ai, af), (bi, bf)) = (split(&ta), split(&tb));
    ai.len()
        .cmp(&bi.len())
        .then_with(|| ai.cmp(bi))
        .then_with(|| af.cmp(bf))
}

/// xorshift64*: a fixed-seed generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// 1 to `max` random decimal digits.
    fn digits_upto(&mut self, max: u64) -> String {
        let n = 1 + self.below(max);
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// A random client cursor text, biased towards the edges: the generated form, leading
/// zeros, no fraction, short and long fractions, trailing zeros, huge integer parts, and
/// values next to `base` (a generated value).
fn client_text(r: &mut Rng, base: (u64, u64)) -> String {
    let (secs, frac) = base;
    match r.below(10) {
        0 => format!("{secs}.{frac:014}"),
        1 => format!("00{secs}.{frac:014}"),
        2 => format!("{secs}"),
        3 => format!("{secs}.{:014}{}", frac, r.digits_upto(12)),
        4 => format!(
            "{secs}.{}",
            &format!("{frac:014}")[..1 + r.below(13) as usize]
        ),
        5 => format!(
            "{}.{frac:014}000",
            secs.saturating_add(r.below(3)).saturating_sub(1)
        ),
        6 => r.digits_upto(45),
        7 => format!("{}.{}", r.digits_upto(25), r.digits_upto(30)),
        8 => format!("{}.{}", u64::MAX, r.digits_upto(16)),
        _ => format!(
            "{}.{:014}",
            secs,
            frac.saturating_add(r.below(3)).min(FRAC_UNITS - 1)
        ),
    }
}

fn generated(r: &mut Rng) -> (u64, u64) {
    let secs = match r.below(5) {
        0 => 0,
        1 => u64::MAX - r.below(2),
        2 => r.below(100),
        _ => 1_700_000_000 + r.below(1000),
    };
    let frac = match r.below(4) {
        0 => 0,
        1 => FRAC_UNITS - 1,
        _ => r.below(FRAC_UNITS),
    };
    (secs, frac)
}

#[test]
fn comparison_matches_the_formatting_one_on_random_and_edge_cursors() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..50_000 {
        let (g1, g2) = (generated(&mut r), generated(&mut r));
        let cursors = [
            Cursor::Gen {
                secs: g1.0,
                frac: g1.1,
            },
            t(&client_text(&mut r, g1)),
            t(&client_text(&mut r, g2)),
            Cursor::Gen {
                secs: g2.0,
                frac: g2.1,
            },
        ];
        for a in &cursors {
            for b in &cursors {
                assert_eq!(a.cmp_value(b), old_cmp(a, b), "{a} vs {b}");
            }
        }
    }
}

#[test]
fn client_cursors_echo_byte_for_byte_and_keep_their_identity() {
    let mut r = Rng(42);
    for _ in 0..50_000 {
        let g = generated(&mut r);
        let (a, b) = (client_text(&mut r, g), client_text(&mut r, g));
        let (ca, cb) = (t(&a), t(&b));
        let mut out = Vec::new();
        ca.write_to(&mut out);
        assert_eq!(out, a.as_bytes());
        assert_eq!(ca.to_string(), a);
        assert_eq!(ca.same_text(&cb), a == b, "{a} / {b}");
        assert!(ca.is_from_client());
        assert_eq!(ca.is_zero(), a.bytes().all(|c| c == b'0' || c == b'.'));
        // A generated cursor never has the same text as a client's (as before).
        assert!(!Cursor::Gen {
            secs: g.0,
            frac: g.1
        }
        .same_text(&ca));
    }
}

#[test]
fn canonical_client_cursors_are_held_as_integers_others_as_text() {
    let canonical = [
        "0.00000000000000",
        "1700000000.12345678901234",
        "18446744073709551615.99999999999999",
    ];
    for s in canonical {
        assert!(matches!(t(s), Cursor::Client { .. }), "{s}");
    }
    let text = [
        "01.00000000000000",
        "1.0000000000000",
        "1.000000000000000",
        "18446744073709551616.00000000000000",
        "7",
    ];
    for s in text {
        assert!(matches!(t(s), Cursor::Text(_)), "{s}");
    }
}

#[test]
fn cursors_do_not_grow() {
    assert!(std::mem::size_of::<Cursor>() <= 24);
    assert_eq!(
        std::mem::size_of::<Option<Cursor>>(),
        std::mem::size_of::<Cursor>()
    );
}

#[test]
fn out_of_range_generated_values_compare_as_printed() {
    let odd = Cursor::Gen {
        secs: 1,
        frac: FRAC_UNITS * 3,
    };
    for s in ["1.3", "1.300000000000000", "2", "1", "0.9"] {
        assert_eq!(odd.cmp_value(&t(s)), old_cmp(&odd, &t(s)), "{s}");
        assert_eq!(t(s).cmp_value(&odd), old_cmp(&t(s), &odd), "{s}");
    }
    assert_eq!(odd.to_string(), format!("1.{:014}", FRAC_UNITS * 3));
}
