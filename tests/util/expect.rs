//! Expected reply bodies and the masks the original harness applies: reply blocks
//! (spec 4.5), generated cursors, the masks of IN replies, and time helpers
//! (`http_date`, mtimes).
//!
//! Data: plain strings; `GEN` stands for a generated cursor in an expected body.
//!
//! May use std only.

use std::fs;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Placeholder for a generated cursor in expected bodies, as the original harness prints it.
pub const GEN: &str = "<cursor>";

/// Whether `c` has the generated-cursor form `<10 digits>.<14 digits>` (spec 5.1).
pub fn is_generated_cursor(c: &str) -> bool {
    match c.split_once('.') {
        Some((a, b)) => {
            a.len() == 10
                && b.len() == 14
                && a.bytes().all(|x| x.is_ascii_digit())
                && b.bytes().all(|x| x.is_ascii_digit())
        }
        None => false,
    }
}

/// Replaces every quoted generated cursor (`"<10 digits>.<14 digits>"`) with `<cursor>`;
/// client-supplied cursors stay as they are.
pub fn mask_generated(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('"') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        match after.find('"') {
            Some(j) if is_generated_cursor(&after[..j]) => {
                out.push_str(GEN);
                rest = &after[j + 1..];
            }
            _ => {
                out.push('"');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `"ids"` maps of a reply body, in block order: `[(id, cursor), ...]` per block.
pub fn parse_ids(body: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    for line in body.lines() {
        let Some(inner) = line
            .strip_prefix("    \"ids\": { ")
            .and_then(|l| l.strip_suffix(" },"))
        else {
            continue;
        };
        let mut pairs = Vec::new();
        for pair in inner.split(", ") {
            let (id, cursor) = pair.split_once(": ").expect("id: cursor");
            pairs.push((
                id.trim_matches('"').to_string(),
                cursor.trim_matches('"').to_string(),
            ));
        }
        out.push(pairs);
    }
    out
}

/// One reply block (spec 4.5). A cursor equal to `GEN` is written unquoted, as masked.
pub fn block(ids: &[(&str, &str)], data: &str) -> String {
    let pairs: Vec<String> = ids
        .iter()
        .map(|(id, c)| {
            if *c == GEN {
                format!("\"{id}\": {GEN}")
            } else {
                format!("\"{id}\": \"{c}\"")
            }
        })
        .collect();
    let sep = if data.contains('\n') { "\n" } else { " " };
    format!(
        "  {{\n    \"ids\": {{ {} }},\n    \"data\":{sep}{data}\n  }}",
        pairs.join(", ")
    )
}

/// A whole reply body: `[\n` + blocks joined by `,\n` + `\n]` (no trailing newline).
pub fn body(blocks: &[String]) -> String {
    format!("[\n{}\n]", blocks.join(",\n"))
}

/// Seconds since the epoch of a file's mtime.
pub fn mtime_secs(path: &Path) -> u64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(UNIX_EPOCH)
        .expect("after epoch")
        .as_secs()
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after epoch")
        .as_secs()
}

/// `strftime("%a, %e %b %Y %H:%M:%S GMT")` of a Unix time (spec 4.2).
pub fn http_date(secs: u64) -> String {
    const WD: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86400) as i64;
    let tod = secs % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:>2} {} {} {:02}:{:02}:{:02} GMT",
        WD[((days + 4) % 7) as usize],
        d,
        MON[(m - 1) as usize],
        y,
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    )
}

/// The original harness's masks for IN replies (spec 12.0): `(0x<hex>)` becomes `(0x*)`,
/// and a position or cursor followed by `:` after `online `, `offline `, `FAKE `, `=> ` or
/// `[` becomes `*`.
pub fn mask_in(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    'outer: while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("(0x") {
            let hex = after.bytes().take_while(u8::is_ascii_hexdigit).count();
            if hex > 0 && after[hex..].starts_with(')') {
                out.push_str("(0x*)");
                rest = &after[hex + 1..];
                continue;
            }
        }
        for p in ["online ", "offline ", "FAKE ", "=> ", "["] {
            if let Some(after) = rest.strip_prefix(p) {
                let n = after
                    .bytes()
                    .take_while(|b| b.is_ascii_digit() || *b == b'.')
                    .count();
                if n > 0 && after[n..].starts_with(':') {
                    out.push_str(p);
                    out.push('*');
                    rest = &after[n..];
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}
