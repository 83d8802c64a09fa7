//! The C++ port's plain config format: one `KEY = value` per line, `#` comments, values
//! optionally in double quotes.
//!
//! Data shape: text in, a `Vec<(line, key, Value)>` out (applied by `eval_file` only when the whole
//! file parsed); a value is an Int, a Num or a Str by its shape.
//!
//! Uses: `super::{Value, Fail, fail, clip}`, `lexer::is_identifier`, `numbers` and `std`.

use super::lexer::is_identifier;
use super::numbers::parse_numeric_prefix;
use super::{clip, fail, Fail, Value};

/// Whether any line mentions %CONFIG/$CONFIG before its first `#` (the C++ port's test).
pub(super) fn mentions_config(text: &str) -> bool {
    text.lines().any(|line| {
        let code = line.split('#').next().unwrap_or("");
        code.contains("$CONFIG") || code.contains("%CONFIG") || code.contains("::CONFIG")
    })
}

/// Parses the C++ port's plain format into (line, key, value). Nothing is applied until the
/// whole file is read, so a failure leaves the caller free to try the file as Perl.
pub(super) fn parse_plain(text: &str) -> Result<Vec<(usize, String, Value)>, Fail> {
    let mut pairs = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let Some((key, value)) = content.split_once('=') else {
            return fail(
                line,
                format!(
                    "syntax error: expected KEY = value, found '{}'",
                    clip(content)
                ),
            );
        };
        let key = key.trim();
        if !is_identifier(key) {
            return fail(
                line,
                format!(
                    "syntax error: invalid key '{}' (expected KEY = value)",
                    clip(key)
                ),
            );
        }
        let value = value.trim();
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) if value.len() >= 2 => inner,
            _ => value,
        };
        pairs.push((line, key.to_string(), plain_value(value)));
    }
    Ok(pairs)
}

/// Integer-looking text becomes Int, float-looking text Num, anything else stays a string.
fn plain_value(v: &str) -> Value {
    if v.bytes()
        .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
    {
        if let Ok(i) = v.parse::<i64>() {
            return Value::Int(i);
        }
    }
    let (n, whole) = parse_numeric_prefix(v);
    let shaped = v
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    if whole && shaped && v.bytes().any(|b| b.is_ascii_digit()) {
        return Value::Num(n.as_f64());
    }
    Value::Str(v.to_string())
}
