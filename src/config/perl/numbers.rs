//! Perl's numbers, as the config evaluator needs them.
//!
//! Job: numify strings the way Perl does, format doubles as Perl's `%.15g`, and evaluate the
//! binary and unary operators on scalars (`. x + - * / % **`, unary minus, `LIST->[i]`),
//! keeping integers exact until a result leaves them, as Perl's IV/NV arithmetic does.
//!
//! Data shape: `Number` (an exact `i64` or an `f64`) during arithmetic; operands and results
//! are `Value`s. Errors are plain messages; the parser adds the line.
//!
//! Uses: `super::{Value, list_bytes, clip}` and `std`.

use super::{clip, list_bytes, Value};

/// Longest string `x` or `.` may build. The largest real use (a test fixture) is 1 MiB; the
/// cap only stops a typo such as `"x" x 1e12` from exhausting memory.
const MAX_STRING_LEN: usize = 64 << 20;
/// Longest list that list repetition (`(1, 2) x N`) may build.
const MAX_LIST_LEN: usize = 1 << 20;

/// A number during arithmetic: Perl keeps integers exact (IV) until an operation leaves
/// the integers, then uses doubles (NV).
#[derive(Debug, Clone, Copy)]
pub(super) enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub(super) fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    fn into_value(self) -> Value {
        match self {
            Number::Int(i) => Value::Int(i),
            Number::Float(f) => Value::Num(f),
        }
    }
}

fn is_perl_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Numifies a string the way Perl does: leading whitespace, an optional sign, a decimal
/// number (integer, fraction, exponent) or Inf/NaN; anything after it is ignored, and no
/// number at all gives 0. Hex text ("0x1F") is 0, as in Perl. The flag says whether the
/// whole string (bar surrounding whitespace) was a number, which unary minus needs.
pub(super) fn parse_numeric_prefix(s: &str) -> (Number, bool) {
    let t = s.trim_start_matches(is_perl_space);
    let b = t.as_bytes();
    let mut i = 0;
    let mut sign = "";
    match b.first() {
        Some(b'-') => {
            sign = "-";
            i = 1;
        }
        Some(b'+') => i = 1,
        _ => {}
    }
    let rest_is_blank = |from: usize| {
        t.get(from..)
            .unwrap_or("")
            .trim_matches(is_perl_space)
            .is_empty()
    };
    let after_sign = t.get(i..).unwrap_or("");
    for (word, value) in [
        ("infinity", f64::INFINITY),
        ("inf", f64::INFINITY),
        ("nan", f64::NAN),
    ] {
        if after_sign
            .get(..word.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(word))
        {
            let v = if sign == "-" { -value } else { value };
            return (Number::Float(v), rest_is_blank(i + word.len()));
        }
    }
    let digits_from = |mut j: usize| {
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        j
    };
    let int_end = digits_from(i);
    let int_digits = t.get(i..int_end).unwrap_or("");
    i = int_end;
    let mut frac_digits = "";
    let mut is_float = false;
    if b.get(i) == Some(&b'.') {
        let frac_end = digits_from(i + 1);
        if !int_digits.is_empty() || frac_end > i + 1 {
            frac_digits = t.get(i + 1..frac_end).unwrap_or("");
            is_float = true;
            i = frac_end;
        }
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return (Number::Int(0), false);
    }
    let mut exponent = "";
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_end = digits_from(j);
        if exp_end > j {
            exponent = t.get(i + 1..exp_end).unwrap_or("");
            is_float = true;
            i = exp_end;
        }
    }
    let whole = rest_is_blank(i);
    if !is_float {
        if let Ok(n) = format!("{sign}{int_digits}").parse::<i64>() {
            return (Number::Int(n), whole);
        }
    }
    // Rebuild a form Rust's parser always accepts: digits on both sides of the point.
    let text = format!(
        "{sign}{}.{}e{}",
        if int_digits.is_empty() {
            "0"
        } else {
            int_digits
        },
        if frac_digits.is_empty() {
            "0"
        } else {
            frac_digits
        },
        if exponent.is_empty() { "0" } else { exponent },
    );
    (Number::Float(text.parse().unwrap_or(0.0)), whole)
}

/// Formats a double as Perl does, which is C's `%.15g`: 15 significant digits, trailing
/// zeros removed, exponent form when the exponent is below -4 or at least 15.
pub(super) fn format_num(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        // Perl prints negative zero as "0" too.
        return "0".to_string();
    }
    // Rounding to 15 digits first gives the exponent %g decides with (9.9999999999999999e14
    // rounds up to 1e15 and so is printed in exponent form).
    let sci = format!("{f:.14e}");
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    if !(-4..15).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            strip_fraction_zeros(mantissa),
            exp.unsigned_abs()
        )
    } else {
        let decimals = usize::try_from(14 - exp).unwrap_or(0);
        strip_fraction_zeros(&format!("{f:.decimals$}")).to_string()
    }
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Numeric view of an operand. References have no sensible number in a config (Perl would
/// use the memory address), so arithmetic on them is reported instead.
fn numify(v: &Value) -> Result<Number, String> {
    match v {
        Value::Undef => Ok(Number::Int(0)),
        Value::Int(i) => Ok(Number::Int(*i)),
        Value::Num(f) => Ok(Number::Float(*f)),
        Value::Str(s) => Ok(parse_numeric_prefix(s).0),
        Value::List(_) => Err("unsupported construct: arithmetic on an array reference".into()),
        Value::Code(_) => Err("unsupported construct: arithmetic on a code reference".into()),
    }
}

/// Evaluates a binary operator on two scalars.
pub(super) fn binop(op: &str, a: Value, b: Value) -> Result<Value, String> {
    match op {
        "." => {
            let mut s = a.to_perl_string();
            let t = b.to_perl_string();
            if s.len().saturating_add(t.len()) > MAX_STRING_LEN {
                return Err(format!("string longer than {MAX_STRING_LEN} bytes"));
            }
            s.push_str(&t);
            Ok(Value::Str(s))
        }
        "x" => {
            let s = a.to_perl_string();
            let n = repeat_count(&b)?;
            if s.is_empty() || n == 0 {
                return Ok(Value::Str(String::new()));
            }
            if s.len().saturating_mul(n) > MAX_STRING_LEN {
                return Err(format!(
                    "string repetition longer than {MAX_STRING_LEN} bytes"
                ));
            }
            Ok(Value::Str(s.repeat(n)))
        }
        "%" => modulo(numify(&a)?, numify(&b)?),
        _ => arith(op, numify(&a)?, numify(&b)?),
    }
}

/// `+ - * / **`: exact integer results stay integers (as Perl's IV arithmetic), anything
/// that overflows or leaves the integers becomes a double.
fn arith(op: &str, a: Number, b: Number) -> Result<Value, String> {
    use Number::{Float, Int};
    let (x, y) = (a.as_f64(), b.as_f64());
    let n = match (op, a, b) {
        ("+", Int(i), Int(j)) => i.checked_add(j).map_or(Float(x + y), Int),
        ("-", Int(i), Int(j)) => i.checked_sub(j).map_or(Float(x - y), Int),
        ("*", Int(i), Int(j)) => i.checked_mul(j).map_or(Float(x * y), Int),
        ("+", ..) => Float(x + y),
        ("-", ..) => Float(x - y),
        ("*", ..) => Float(x * y),
        ("/", ..) if y == 0.0 => return Err("Illegal division by zero".into()),
        ("/", Int(i), Int(j)) if i.checked_rem(j) == Some(0) => {
            i.checked_div(j).map_or(Float(x / y), Int)
        }
        ("/", ..) => Float(x / y),
        ("**", Int(i), Int(j)) => u32::try_from(j)
            .ok()
            .and_then(|e| i.checked_pow(e))
            .map_or(Float(x.powf(y)), Int),
        ("**", ..) => Float(x.powf(y)),
        _ => return Err(format!("unsupported construct: operator '{op}'")),
    };
    Ok(n.into_value())
}

/// Perl's `%`: operands are truncated to integers and the result takes the sign of the
/// right operand (unlike C). Operands too large for integers use the floating remainder.
fn modulo(a: Number, b: Number) -> Result<Value, String> {
    let to_int = |n: Number| match n {
        Number::Int(i) => Some(i),
        Number::Float(f) if f.is_finite() && f.abs() < 9.2e18 => Some(f.trunc() as i64),
        Number::Float(_) => None,
    };
    match (to_int(a), to_int(b)) {
        (_, Some(0)) => Err("Illegal modulus zero".into()),
        (Some(x), Some(y)) => {
            // i64::MIN % -1 overflows in Rust but is mathematically 0.
            let r = x.checked_rem(y).unwrap_or(0);
            Ok(Value::Int(if r != 0 && (r < 0) != (y < 0) {
                r + y
            } else {
                r
            }))
        }
        _ => {
            let (x, y) = (a.as_f64(), b.as_f64().trunc());
            let r = x % y;
            Ok(Value::Num(if r != 0.0 && (r < 0.0) != (y < 0.0) {
                r + y
            } else {
                r
            }))
        }
    }
}

/// The right operand of `x`: truncated, negative or NaN meaning zero.
fn repeat_count(v: &Value) -> Result<usize, String> {
    let f = numify(v)?.as_f64();
    if f.is_nan() || f < 1.0 {
        return Ok(0);
    }
    // `as` saturates, and the callers cap the product anyway.
    Ok(f as usize)
}

pub(super) fn repeat_list(items: Vec<Value>, count: &Value) -> Result<Vec<Value>, String> {
    let n = repeat_count(count)?;
    if items.len().saturating_mul(n) > MAX_LIST_LEN {
        return Err(format!("list repetition longer than {MAX_LIST_LEN} items"));
    }
    // Each repeated item is a copy: bound the bytes too, before copying anything.
    if list_bytes(&items).saturating_mul(n) > MAX_STRING_LEN {
        return Err(format!(
            "list repetition longer than {MAX_STRING_LEN} bytes"
        ));
    }
    let mut out = Vec::with_capacity(items.len() * n);
    for _ in 0..n {
        out.extend(items.iter().cloned());
    }
    Ok(out)
}

/// Unary minus. On strings Perl has a quirk kept here: `-"foo"` is "-foo" and `-"-foo"` is
/// "+foo"; only numeric-looking strings are negated as numbers.
pub(super) fn negate(v: Value) -> Result<Value, String> {
    match v {
        Value::Str(s) => {
            let first = s.chars().next();
            if first.is_some_and(|c| c.is_ascii_alphabetic() || c == '_') {
                return Ok(Value::Str(format!("-{s}")));
            }
            let (n, whole) = parse_numeric_prefix(&s);
            if !whole {
                if let Some(rest) = s.strip_prefix('-') {
                    return Ok(Value::Str(format!("+{rest}")));
                }
                if let Some(rest) = s.strip_prefix('+') {
                    return Ok(Value::Str(format!("-{rest}")));
                }
            }
            Ok(negate_number(n))
        }
        other => Ok(negate_number(numify(&other)?)),
    }
}

fn negate_number(n: Number) -> Value {
    match n {
        Number::Int(i) => i.checked_neg().map_or(Value::Num(-(i as f64)), Value::Int),
        Number::Float(f) => Value::Num(-f),
    }
}

/// `LIST->[i]`: negative indexes count from the end; a missing element or an undefined
/// container reads as undef, as in Perl.
pub(super) fn index_value(container: Value, index: &Value) -> Result<Value, String> {
    match container {
        Value::List(items) => {
            let i = numify(index)?.as_f64().trunc();
            let len = items.len() as f64;
            let i = if i < 0.0 { i + len } else { i };
            if i < 0.0 || i >= len {
                return Ok(Value::Undef);
            }
            Ok(items.into_iter().nth(i as usize).unwrap_or(Value::Undef))
        }
        Value::Undef => Ok(Value::Undef),
        other => Err(format!(
            "not an ARRAY reference: '{}'",
            clip(&other.to_perl_string())
        )),
    }
}
