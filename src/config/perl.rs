//! Evaluates Realplexor's Perl-syntax configuration files without running Perl.
//!
//! Real deployments configure Realplexor with files that Perl evaluates with `do FILE`: the
//! default `dklab_realplexor.conf` assigns the whole `%CONFIG` hash, and additional files
//! assign single keys (`$CONFIG{KEY} = ...;`), sometimes through small expressions such as
//! `1024 * 5` or `dirname(abs_path(__FILE__)) . "/file"`. This module evaluates exactly the
//! subset of Perl that such files use and reports anything else as an error naming the file,
//! the line and the construct, so that a config is never half-understood. It also accepts the
//! plain `KEY = value` format that the C++ port reads.
//!
//! Data shape: `eval_file` updates a `ConfigMap` (the `%CONFIG` hash: key -> `Value`). A
//! `Value` is what Perl would hold after evaluation: undef, an integer, a float, a string, an
//! array reference (`Value::List`) or a code reference (`Value::Code`, kept as source text
//! only, for the caller to report).
//!
//! Structure: a lazy tokenizer (`Lexer`) that tracks line numbers feeds one recursive-descent
//! parser (`Parser`) that evaluates each statement as soon as it has parsed it, the way Perl
//! runs the file top to bottom. Laziness matters: `sub { ... }` bodies and everything after
//! `__END__` are never tokenized, because they may contain Perl this module cannot read.
//!
//! The module is self-contained: it uses only `std` and nothing else from this crate.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Deepest nesting of brackets, parentheses and unary operators; deeper input is rejected
/// with an error instead of risking a stack overflow in the recursive parser.
const MAX_DEPTH: usize = 64;
/// Longest string `x` or `.` may build. The largest real use (a test fixture) is 1 MiB; the
/// cap only stops a typo such as `"x" x 1e12` from exhausting memory.
const MAX_STRING_LEN: usize = 64 << 20;
/// Longest list that list repetition (`(1, 2) x N`) may build.
const MAX_LIST_LEN: usize = 1 << 20;
/// Bytes that `.`, `x` and list repetition may build in one file, all values together:
/// without it, a few lines of `'x' x 6e7` (each within MAX_STRING_LEN) would exhaust
/// memory.
const MAX_BUILT: usize = 128 << 20;

/// The bytes a value holds (numbers and undef count as a word).
fn value_bytes(v: &Value) -> usize {
    match v {
        Value::Str(s) | Value::Code(s) => s.len(),
        Value::List(items) => list_bytes(items),
        Value::Undef | Value::Int(_) | Value::Num(_) => 8,
    }
}

/// The bytes the values of a list hold together.
fn list_bytes(items: &[Value]) -> usize {
    items
        .iter()
        .fold(0usize, |a, i| a.saturating_add(value_bytes(i)))
}

/// A value as Perl would hold it after evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Undef,
    Int(i64),
    Num(f64),
    Str(String),
    List(Vec<Value>),
    /// A code reference (`sub { ... }`); the text is kept only to be reported.
    Code(String),
}

impl Value {
    /// Perl's stringification: Int as decimal; Num like Perl's "%.15g" (0.01 -> "0.01",
    /// 5120.0 -> "5120", 1e21 -> "1e+21", 0.5 -> "0.5"); Str as is; Undef -> ""; List ->
    /// items' strings joined with a single space; Code -> "CODE".
    pub fn to_perl_string(&self) -> String {
        match self {
            Value::Undef => String::new(),
            Value::Int(i) => i.to_string(),
            Value::Num(f) => format_num(*f),
            Value::Str(s) => s.clone(),
            // Perl would print ARRAY(0x...); joining the items is what the C++ port reads
            // back from Perl and what the server wants for address lists.
            Value::List(items) => items
                .iter()
                .map(Value::to_perl_string)
                .collect::<Vec<_>>()
                .join(" "),
            Value::Code(_) => "CODE".to_string(),
        }
    }

    /// Numeric value as Perl would coerce it (Str "12abc" -> 12, "" -> 0, Undef -> 0, List
    /// -> its length). Used for timeouts etc. A code reference counts as 0.
    pub fn to_f64(&self) -> f64 {
        match self {
            Value::Undef | Value::Code(_) => 0.0,
            Value::Int(i) => *i as f64,
            Value::Num(f) => *f,
            Value::Str(s) => parse_numeric_prefix(s).0.as_f64(),
            Value::List(items) => items.len() as f64,
        }
    }

    /// Perl truthiness ("" , "0", 0, Undef are false).
    pub fn is_true(&self) -> bool {
        match self {
            Value::Undef => false,
            Value::Int(i) => *i != 0,
            // NaN is true in Perl, and `!=` says so too.
            Value::Num(f) => *f != 0.0,
            Value::Str(s) => !(s.is_empty() || s == "0"),
            Value::List(_) | Value::Code(_) => true,
        }
    }
}

/// The %CONFIG hash. BTreeMap so iteration is deterministic.
pub type ConfigMap = BTreeMap<String, Value>;

/// Why a config file could not be evaluated, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct PerlError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for PerlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

impl std::error::Error for PerlError {}

/// Evaluates one config file's text into `config`, as Perl's `do FILE` would when the file
/// assigns to %CONFIG.
/// `file` is the file's path as it should appear in errors and as `__FILE__` (the caller
/// passes an absolute path).
/// On error, `config` may be partially modified; the caller works on a copy.
pub fn eval_file(text: &str, file: &str, config: &mut ConfigMap) -> Result<(), PerlError> {
    // Perl skips a UTF-8 byte order mark at the start of a source file.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let to_error = |f: Fail| PerlError {
        file: file.to_string(),
        line: f.line,
        message: f.message,
    };
    // The C++ port's rule: a file that never mentions %CONFIG/$CONFIG outside a comment is a
    // plain `KEY = value` list.
    if mentions_config(text) {
        return eval_perl(text, file, config).map_err(to_error);
    }
    match parse_plain(text) {
        Ok(pairs) => {
            config.extend(pairs);
            Ok(())
        }
        Err(plain) => {
            // Not a plain list after all: it may be Perl that does not touch %CONFIG (`1;`,
            // `use strict;`), or whose only `$CONFIG` follows a `#` inside a string.
            let mut scratch = config.clone();
            match eval_perl(text, file, &mut scratch) {
                Ok(()) => {
                    *config = scratch;
                    Ok(())
                }
                // Report the reading that got further, it is most likely the intended one;
                // on the same line, a ';' there says the author was writing Perl.
                Err(perl) => {
                    let failed_line = text.lines().nth(plain.line.saturating_sub(1)).unwrap_or("");
                    let perl_like = failed_line.split('#').next().unwrap_or("").contains(';');
                    let use_perl = perl.line > plain.line || (perl.line == plain.line && perl_like);
                    Err(to_error(if use_perl { perl } else { plain }))
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Numbers
// ---------------------------------------------------------------------------------------

/// A number during arithmetic: Perl keeps integers exact (IV) until an operation leaves
/// the integers, then uses doubles (NV).
#[derive(Debug, Clone, Copy)]
enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn as_f64(self) -> f64 {
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
fn parse_numeric_prefix(s: &str) -> (Number, bool) {
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
fn format_num(f: f64) -> String {
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
fn binop(op: &str, a: Value, b: Value) -> Result<Value, String> {
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

fn repeat_list(items: Vec<Value>, count: &Value) -> Result<Vec<Value>, String> {
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
fn negate(v: Value) -> Result<Value, String> {
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
fn index_value(container: Value, index: &Value) -> Result<Value, String> {
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

// ---------------------------------------------------------------------------------------
// Paths: File::Basename (Unix rules) and Cwd::abs_path
// ---------------------------------------------------------------------------------------

/// File::Basename's fileparse on Unix: everything up to the last '/' is the directory
/// ("./" when there is none), the rest is the name.
fn fileparse(path: &str) -> (String, String) {
    match path.rsplit_once('/') {
        Some((dir, base)) => (format!("{dir}/"), base.to_string()),
        None => ("./".to_string(), path.to_string()),
    }
}

/// `s{(.)/*\z}{$1}s`: drops trailing slashes but never the first character.
fn strip_trailing_sep(s: &str) -> String {
    let trimmed = s.trim_end_matches('/');
    if trimmed.is_empty() {
        s.get(..1).unwrap_or("").to_string()
    } else {
        trimmed.to_string()
    }
}

/// File::Basename::dirname on Unix: "/a/b/c" -> "/a/b", "/a/b/" -> "/a", "a" -> ".",
/// "/" -> "/".
fn dirname(path: &str) -> String {
    let (dir, base) = fileparse(path);
    let dir = strip_trailing_sep(&dir);
    if base.is_empty() {
        strip_trailing_sep(&fileparse(&dir).0)
    } else {
        dir
    }
}

/// File::Basename::basename on Unix, with its optional list of suffixes to remove.
fn basename(path: &str, suffixes: &[String]) -> String {
    let (dir, mut base) = fileparse(&strip_trailing_sep(path));
    let mut tail = String::new();
    for suffix in suffixes {
        if let Some(stem) = base.strip_suffix(suffix.as_str()) {
            tail = format!("{suffix}{tail}");
            base = stem.to_string();
        }
    }
    if base.is_empty() && !tail.is_empty() {
        base = tail;
    }
    if base.is_empty() {
        base = dir;
    }
    base
}

/// Cwd::abs_path: the canonical path when it exists. Perl's realpath also accepts a missing
/// last component, so the parent is canonicalised next; failing that, the path is made
/// absolute and normalised lexically rather than giving up.
fn abs_path(path: &str) -> String {
    if let Ok(real) = std::fs::canonicalize(path) {
        return real.to_string_lossy().into_owned();
    }
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => format!("{}/{path}", cwd.to_string_lossy()),
            Err(_) => path.to_string(),
        }
    };
    let normal = normalize_path(&joined);
    if let Some((dir, name)) = normal.rsplit_once('/') {
        if !name.is_empty() {
            let dir = if dir.is_empty() { "/" } else { dir };
            if let Ok(real) = std::fs::canonicalize(dir) {
                let real = real.to_string_lossy();
                let sep = if real.ends_with('/') { "" } else { "/" };
                return format!("{real}{sep}{name}");
            }
        }
    }
    normal
}

/// Removes "." and empty components and resolves ".." without touching the file system.
fn normalize_path(p: &str) -> String {
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for component in p.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    if absolute {
        format!("/{body}")
    } else if body.is_empty() {
        ".".to_string()
    } else {
        body
    }
}

#[derive(Debug, Clone, Copy)]
enum Builtin {
    Dirname,
    Basename,
    AbsPath,
}

/// The only functions a config may call: the ones the test fixtures import.
fn builtin(name: &str) -> Option<Builtin> {
    match name {
        "dirname" | "File::Basename::dirname" => Some(Builtin::Dirname),
        "basename" | "File::Basename::basename" => Some(Builtin::Basename),
        "abs_path" | "realpath" | "Cwd::abs_path" | "Cwd::realpath" => Some(Builtin::AbsPath),
        _ => None,
    }
}

fn call_builtin(f: Builtin, name: &str, args: &[Value]) -> Result<Value, String> {
    let args: Vec<String> = args.iter().map(Value::to_perl_string).collect();
    let bad_count = || format!("{name}() got {} arguments", args.len());
    let s = match (f, args.as_slice()) {
        (Builtin::Dirname, [p]) => dirname(p),
        (Builtin::Basename, [p, suffixes @ ..]) => basename(p, suffixes),
        (Builtin::AbsPath, []) => abs_path("."),
        (Builtin::AbsPath, [p]) => abs_path(p),
        _ => return Err(bad_count()),
    };
    Ok(Value::Str(s))
}

// ---------------------------------------------------------------------------------------
// Plain `KEY = value` format
// ---------------------------------------------------------------------------------------

/// Whether any line mentions %CONFIG/$CONFIG before its first `#` (the C++ port's test).
fn mentions_config(text: &str) -> bool {
    text.lines().any(|line| {
        let code = line.split('#').next().unwrap_or("");
        code.contains("$CONFIG") || code.contains("%CONFIG") || code.contains("::CONFIG")
    })
}

/// Parses the C++ port's plain format. Nothing is applied until the whole file is read, so
/// a failure leaves the caller free to try the file as Perl.
fn parse_plain(text: &str) -> Result<Vec<(String, Value)>, Fail> {
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
        pairs.push((key.to_string(), plain_value(value)));
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

fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(is_ident_start) && bytes.all(is_ident_char)
}

// ---------------------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------------------

/// An error before it is tied to a file name.
#[derive(Debug)]
struct Fail {
    line: usize,
    message: String,
}

type Res<T> = Result<T, Fail>;

fn fail<T>(line: usize, message: impl Into<String>) -> Res<T> {
    Err(Fail {
        line,
        message: message.into(),
    })
}

/// Shortens input quoted in an error message (by characters, never splitting one).
fn clip(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(MAX).collect::<String>())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Eof,
    Int(i64),
    Num(f64),
    /// A single-quoted string, escapes already resolved.
    Str(String),
    /// A double-quoted string's raw body and its first line; it is interpolated when
    /// evaluated, because interpolation needs the variables of that moment.
    Interp {
        body: String,
        line: usize,
    },
    /// `qw(...)`.
    Words(Vec<String>),
    Scalar(String),
    Hash(String),
    Array(String),
    Ident(String),
    Punct(&'static str),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
    /// Byte offset of the token, to cut out the source text of `sub { ... }`.
    start: usize,
}

/// Operators and punctuation, longest first. Many are not supported; they are still
/// recognised so that errors can name them.
const PUNCTS: &[&str] = &[
    "<=>", "**=", "||=", "&&=", "//=", "...", "=>", "==", "!=", "<=", ">=", "=~", "!~", "->", "++",
    "--", "**", "+=", "-=", "*=", "/=", ".=", "%=", "&&", "||", "//", "..", "::", "<<", ">>", ";",
    ",", "=", "(", ")", "[", "]", "{", "}", "+", "-", "*", "/", "%", ".", "<", ">", "!", "~", "?",
    ":", "\\", "&", "|", "^", "@", "`",
];

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn closing_delimiter(open: u8) -> u8 {
    match open {
        b'(' => b')',
        b'[' => b']',
        b'{' => b'}',
        b'<' => b'>',
        other => other,
    }
}

/// The names under which the config file can reach %CONFIG (the loader exports it to
/// package main).
fn normalize_var(name: String) -> String {
    match name.as_str() {
        "main::CONFIG" | "::CONFIG" | "Realplexor::Config::CONFIG" => "CONFIG".to_string(),
        _ => name,
    }
}

/// Resolves the escapes of a single-quoted string: only a backslash before a backslash or
/// before the delimiter means anything.
fn unescape_single(raw: &str, open: u8, close: u8) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek() {
                if next == '\\' || next == char::from(open) || next == char::from(close) {
                    out.push(next);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

/// Produces tokens on demand, one at a time, so that the parser can switch to raw scanning
/// (for `sub` bodies) or stop (for `__END__`) at any point. Cloning it is cheap, which is
/// how the parser peeks one token further.
#[derive(Clone)]
struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    /// Whether the previous token ends a term. Perl decides by this whether `%x` is a hash
    /// or a modulus, `.5` a number or a concatenation, and `x` an operator or a name.
    after_term: bool,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Lexer {
            src,
            pos: 0,
            line: 1,
            after_term: false,
        }
    }

    fn byte(&self, offset: usize) -> Option<u8> {
        self.src
            .as_bytes()
            .get(self.pos.checked_add(offset)?)
            .copied()
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn at_line_start(&self) -> bool {
        self.pos == 0 || self.src.as_bytes().get(self.pos - 1) == Some(&b'\n')
    }

    fn skip_to_eol(&mut self) {
        while self.byte(0).is_some_and(|b| b != b'\n') {
            self.pos += 1;
        }
    }

    /// Skips whitespace, comments and, where a statement may begin, POD blocks (Perl only
    /// recognises POD where it expects a statement).
    fn skip_space(&mut self, stmt_start: bool) {
        while let Some(b) = self.byte(0) {
            match b {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' | 0x0b | 0x0c => self.pos += 1,
                b'#' => self.skip_to_eol(),
                b'=' if stmt_start
                    && self.at_line_start()
                    && self.byte(1).is_some_and(|c| c.is_ascii_alphabetic()) =>
                {
                    self.skip_pod()
                }
                _ => break,
            }
        }
    }

    /// Skips lines up to and including one that starts with `=cut` (or to the end).
    fn skip_pod(&mut self) {
        loop {
            let rest = self.rest();
            let is_cut = rest.starts_with("=cut")
                && !rest.as_bytes().get(4).is_some_and(|b| is_ident_char(*b));
            self.skip_to_eol();
            if self.byte(0).is_none() {
                return;
            }
            self.pos += 1;
            self.line += 1;
            if is_cut {
                return;
            }
        }
    }

    fn next(&mut self, stmt_start: bool) -> Res<Token> {
        self.skip_space(stmt_start);
        let (start, line) = (self.pos, self.line);
        let tok = match self.byte(0) {
            None => Tok::Eof,
            Some(b) => self.lex_token(b, line)?,
        };
        self.after_term = match &tok {
            Tok::Punct(p) => matches!(*p, ")" | "]" | "}"),
            // Most words (my, our, return, function names) expect a term next; these
            // few are values themselves.
            Tok::Ident(w) => matches!(w.as_str(), "__FILE__" | "__LINE__"),
            Tok::Eof => false,
            _ => true,
        };
        Ok(Token { tok, line, start })
    }

    fn lex_token(&mut self, b: u8, line: usize) -> Res<Tok> {
        match b {
            b'0'..=b'9' => self.lex_number(line),
            b'.' if !self.after_term && self.byte(1).is_some_and(|c| c.is_ascii_digit()) => {
                self.lex_number(line)
            }
            b'\'' => {
                let raw = self.read_delimited(line)?;
                Ok(Tok::Str(unescape_single(&raw, b'\'', b'\'')))
            }
            b'"' => {
                let raw = self.read_delimited(line)?;
                Ok(Tok::Interp { body: raw, line })
            }
            b'$' => self.lex_scalar(line),
            b'@' if self.byte(1).is_some_and(is_ident_start) => {
                self.pos += 1;
                Ok(Tok::Array(self.read_name()))
            }
            b'%' if !self.after_term && self.byte(1).is_some_and(is_ident_start) => {
                self.pos += 1;
                Ok(Tok::Hash(normalize_var(self.read_name())))
            }
            b if is_ident_start(b) => self.lex_word(line),
            _ => self.lex_punct(line),
        }
    }

    /// An identifier, possibly package-qualified (`File::Basename::dirname`).
    fn read_name(&mut self) -> String {
        let start = self.pos;
        loop {
            while self.byte(0).is_some_and(is_ident_char) {
                self.pos += 1;
            }
            if self.byte(0) == Some(b':')
                && self.byte(1) == Some(b':')
                && self.byte(2).is_some_and(is_ident_start)
            {
                self.pos += 2;
            } else {
                break;
            }
        }
        self.src.get(start..self.pos).unwrap_or("").to_string()
    }

    fn lex_scalar(&mut self, line: usize) -> Res<Tok> {
        match self.byte(1) {
            Some(b) if is_ident_start(b) => {
                self.pos += 1;
                Ok(Tok::Scalar(normalize_var(self.read_name())))
            }
            Some(b':')
                if self.byte(2) == Some(b':') && self.byte(3).is_some_and(is_ident_start) =>
            {
                self.pos += 3;
                Ok(Tok::Scalar(normalize_var(format!(
                    "::{}",
                    self.read_name()
                ))))
            }
            Some(b'{') => {
                // `${name}` is `$name`; anything else in the braces is a dereference.
                self.pos += 2;
                while matches!(self.byte(0), Some(b' ' | b'\t')) {
                    self.pos += 1;
                }
                if self.byte(0).is_some_and(is_ident_start) {
                    let name = self.read_name();
                    while matches!(self.byte(0), Some(b' ' | b'\t')) {
                        self.pos += 1;
                    }
                    if self.byte(0) == Some(b'}') {
                        self.pos += 1;
                        return Ok(Tok::Scalar(normalize_var(name)));
                    }
                }
                fail(line, "unsupported construct: dereference '${...}'")
            }
            Some(b) if b.is_ascii_digit() => {
                self.pos += 1;
                let start = self.pos;
                while self.byte(0).is_some_and(|c| c.is_ascii_digit()) {
                    self.pos += 1;
                }
                Ok(Tok::Scalar(
                    self.src.get(start..self.pos).unwrap_or("").to_string(),
                ))
            }
            // Perl's punctuation variables ($>, $$, $0 ...): lexed so errors can name them.
            Some(b) if b.is_ascii_punctuation() => {
                self.pos += 2;
                Ok(Tok::Scalar(char::from(b).to_string()))
            }
            _ => fail(line, "syntax error: unexpected '$'"),
        }
    }

    fn lex_word(&mut self, line: usize) -> Res<Tok> {
        if self.after_term && self.byte(0) == Some(b'x') {
            // After a term `x` is the repetition operator, even glued to its count (`"-"x3`).
            let mut end = 1;
            while self.byte(end).is_some_and(|c| c.is_ascii_digit()) {
                end += 1;
            }
            if !self.byte(end).is_some_and(is_ident_char) {
                self.pos += 1;
                if end == 1
                    && self.byte(0) == Some(b'=')
                    && !matches!(self.byte(1), Some(b'=' | b'>' | b'~'))
                {
                    self.pos += 1;
                    return Ok(Tok::Punct("x="));
                }
                return Ok(Tok::Punct("x"));
            }
        }
        let name = self.read_name();
        if matches!(name.as_str(), "q" | "qq" | "qw") {
            if let Some(tok) = self.lex_quote_like(&name, line)? {
                return Ok(tok);
            }
        }
        Ok(Tok::Ident(name))
    }

    /// `q(...)`, `qq{...}`, `qw[...]` with any punctuation delimiter. Returns None when the
    /// word is used as a plain name (`q => 1`, `$CONFIG{q}`).
    fn lex_quote_like(&mut self, kind: &str, line: usize) -> Res<Option<Tok>> {
        let bytes = self.src.as_bytes();
        let mut p = self.pos;
        while bytes.get(p).is_some_and(u8::is_ascii_whitespace) {
            p += 1;
        }
        let spaced = p > self.pos;
        let Some(&open) = bytes.get(p) else {
            return Ok(None);
        };
        let is_name = (open == b'=' && bytes.get(p + 1) == Some(&b'>'))
            || matches!(open, b',' | b';' | b')' | b'}' | b']')
            || (open == b'#' && spaced)
            || !open.is_ascii_punctuation();
        if is_name {
            return Ok(None);
        }
        let skipped_lines = self
            .src
            .get(self.pos..p)
            .unwrap_or("")
            .matches('\n')
            .count();
        self.line += skipped_lines;
        self.pos = p;
        let body_line = self.line;
        let raw = self.read_delimited(line)?;
        let close = closing_delimiter(open);
        Ok(Some(match kind {
            "q" => Tok::Str(unescape_single(&raw, open, close)),
            "qq" => Tok::Interp {
                body: raw,
                line: body_line,
            },
            _ => Tok::Words(
                unescape_single(&raw, open, close)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
            ),
        }))
    }

    /// Reads a delimited body starting at the opening delimiter and returns it raw;
    /// bracket delimiters nest, a backslash protects the next character.
    fn read_delimited(&mut self, line: usize) -> Res<String> {
        let bytes = self.src.as_bytes();
        let Some(&open) = bytes.get(self.pos) else {
            return fail(line, "unterminated string");
        };
        let close = closing_delimiter(open);
        let body_start = self.pos + 1;
        let mut p = body_start;
        let mut depth = 0usize;
        let mut newlines = 0;
        loop {
            let Some(&b) = bytes.get(p) else {
                return fail(line, "unterminated string");
            };
            if b == b'\\' {
                if bytes.get(p + 1) == Some(&b'\n') {
                    newlines += 1;
                }
                p += 2;
                continue;
            }
            if b == b'\n' {
                newlines += 1;
            }
            if b == close {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            } else if b == open && open != close {
                depth += 1;
            }
            p += 1;
        }
        let body = self.src.get(body_start..p).unwrap_or("").to_string();
        self.pos = p + 1;
        self.line += newlines;
        Ok(body)
    }

    fn lex_number(&mut self, line: usize) -> Res<Tok> {
        if self.byte(0) == Some(b'0') {
            let radix = match self.byte(1) {
                Some(b'x' | b'X') => Some(16),
                Some(b'b' | b'B') => Some(2),
                Some(b'0'..=b'9' | b'_') => Some(8),
                _ => None,
            };
            if let Some(radix) = radix {
                self.pos += if radix == 8 { 1 } else { 2 };
                return self.lex_radix(radix, line);
            }
        }
        let mut text = String::new();
        let mut is_float = false;
        self.take_digits(&mut text);
        // `1..5` is a range, not "1." followed by ".5".
        if self.byte(0) == Some(b'.') && self.byte(1) != Some(b'.') {
            is_float = true;
            text.push('.');
            self.pos += 1;
            self.take_digits(&mut text);
        }
        if matches!(self.byte(0), Some(b'e' | b'E')) {
            let signed = matches!(self.byte(1), Some(b'+' | b'-'));
            let digits_at = if signed { 2 } else { 1 };
            if self.byte(digits_at).is_some_and(|c| c.is_ascii_digit()) {
                is_float = true;
                text.push('e');
                if signed {
                    text.push(char::from(self.byte(1).unwrap_or(b'+')));
                }
                self.pos += digits_at;
                self.take_digits(&mut text);
            }
        }
        if !is_float {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Tok::Int(i));
            }
        }
        // "1." and ".5" are numbers in Perl; give Rust's parser digits on both sides.
        let text = text.replace(".e", ".0e");
        let text = if text.starts_with('.') {
            format!("0{text}")
        } else {
            text
        };
        let text = if text.ends_with('.') {
            format!("{text}0")
        } else {
            text
        };
        match text.parse::<f64>() {
            Ok(f) => Ok(Tok::Num(f)),
            Err(_) => fail(
                line,
                format!("syntax error: malformed number '{}'", clip(&text)),
            ),
        }
    }

    fn take_digits(&mut self, text: &mut String) {
        while let Some(b) = self.byte(0) {
            if b.is_ascii_digit() {
                text.push(char::from(b));
            } else if b != b'_' {
                break;
            }
            self.pos += 1;
        }
    }

    /// Hex (`0x1F`), binary (`0b101`) and octal (`017`, as Perl reads a leading zero).
    fn lex_radix(&mut self, radix: u32, line: usize) -> Res<Tok> {
        let mut int: Option<i64> = Some(0);
        let mut float = 0f64;
        let mut digits = 0;
        while let Some(b) = self.byte(0) {
            if b == b'_' {
                self.pos += 1;
                continue;
            }
            let accepted = if radix == 16 {
                b.is_ascii_hexdigit()
            } else {
                b.is_ascii_digit()
            };
            if !accepted {
                break;
            }
            let d = char::from(b).to_digit(16).unwrap_or(0);
            if d >= radix {
                let kind = if radix == 8 { "octal" } else { "binary" };
                return fail(
                    line,
                    format!("syntax error: illegal {kind} digit '{}'", char::from(b)),
                );
            }
            int = int
                .and_then(|v| v.checked_mul(i64::from(radix)))
                .and_then(|v| v.checked_add(i64::from(d)));
            float = float * f64::from(radix) + f64::from(d);
            digits += 1;
            self.pos += 1;
        }
        if digits == 0 && radix != 8 {
            return fail(
                line,
                "syntax error: malformed number (no digits after the prefix)",
            );
        }
        Ok(int.map_or(Tok::Num(float), Tok::Int))
    }

    fn lex_punct(&mut self, line: usize) -> Res<Tok> {
        let rest = self.rest();
        if let Some(p) = PUNCTS.iter().find(|p| rest.starts_with(**p)) {
            self.pos += p.len();
            return Ok(Tok::Punct(p));
        }
        let c = rest.chars().next().unwrap_or('?');
        fail(line, format!("syntax error: unexpected character {c:?}"))
    }

    /// Skips the body of a `sub` without tokenizing it (it may hold any Perl). The lexer
    /// stands just after the word `sub`; returns the offset just past the closing brace.
    /// Strings and comments are respected so that a quoted "}" does not end the body.
    fn skip_sub(&mut self, line: usize) -> Res<usize> {
        self.skip_space(false);
        if self.byte(0).is_some_and(is_ident_start) {
            self.read_name();
            self.skip_space(false);
        }
        if self.byte(0) == Some(b'(') {
            // A prototype such as `($$)`.
            while self.byte(0).is_some_and(|b| b != b')') {
                if self.byte(0) == Some(b'\n') {
                    self.line += 1;
                }
                self.pos += 1;
            }
            self.pos += 1;
            self.skip_space(false);
        }
        if self.byte(0) != Some(b'{') {
            return fail(line, "unsupported construct: 'sub' without a block");
        }
        let mut depth = 0usize;
        while let Some(b) = self.byte(0) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.pos += 1;
                        return Ok(self.pos);
                    }
                }
                b'\n' => self.line += 1,
                // `$#array` is not a comment.
                b'#' if !(self.pos > 0 && self.src.as_bytes().get(self.pos - 1) == Some(&b'$')) => {
                    self.skip_to_eol();
                    continue;
                }
                b'\\' => {
                    if self.byte(1) == Some(b'\n') {
                        self.line += 1;
                    }
                    self.pos += 1;
                }
                b'\'' | b'"' | b'`' => {
                    self.read_delimited(self.line)?;
                    continue;
                }
                _ => {}
            }
            self.pos += 1;
        }
        fail(line, "unterminated 'sub' body")
    }
}

/// How a token reads in an error message.
fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Eof => "end of file".to_string(),
        Tok::Int(i) => format!("'{i}'"),
        Tok::Num(f) => format!("'{}'", format_num(*f)),
        Tok::Str(s) => format!("string '{}'", clip(s)),
        Tok::Interp { body, .. } => format!("string \"{}\"", clip(body)),
        Tok::Words(_) => "'qw(...)'".to_string(),
        Tok::Scalar(n) => format!("'${n}'"),
        Tok::Hash(n) => format!("'%{n}'"),
        Tok::Array(n) => format!("'@{n}'"),
        Tok::Ident(n) => format!("'{n}'"),
        Tok::Punct(p) => format!("'{p}'"),
    }
}

/// What an assignment operator does: None for plain `=`, else the binary operator.
fn assignment_op(p: &str) -> Option<Option<&'static str>> {
    Some(match p {
        "=" => None,
        "+=" => Some("+"),
        "-=" => Some("-"),
        "*=" => Some("*"),
        "/=" => Some("/"),
        "%=" => Some("%"),
        "**=" => Some("**"),
        ".=" => Some("."),
        "x=" => Some("x"),
        _ => return None,
    })
}

/// Whether the token assigns; `||=` and friends count so that they are reported by name.
fn is_assignment(tok: &Tok) -> bool {
    match tok {
        Tok::Punct(p) => assignment_op(p).is_some() || matches!(*p, "||=" | "&&=" | "//="),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Parser and evaluator
// ---------------------------------------------------------------------------------------

/// The result of an expression. Perl gives some expressions a different value in list and
/// in scalar context; which one is wanted is only known by the consumer, so both are kept.
enum Ev {
    One(Value),
    /// A list: parentheses, `qw`, `%CONFIG`. In scalar context it is its last element, as
    /// with Perl's comma operator.
    Many(Vec<Value>),
    /// `(LIST) x N`: the repeated list in list context, a repeated string in scalar context.
    Repeat {
        list: Vec<Value>,
        scalar: Value,
    },
}

impl Ev {
    fn scalar(self) -> Value {
        match self {
            Ev::One(v) | Ev::Repeat { scalar: v, .. } => v,
            Ev::Many(mut items) => items.pop().unwrap_or(Value::Undef),
        }
    }

    fn into_list(self) -> Vec<Value> {
        match self {
            Ev::One(v) => vec![v],
            Ev::Many(items) | Ev::Repeat { list: items, .. } => items,
        }
    }
}

fn eval_perl(text: &str, file: &str, config: &mut ConfigMap) -> Res<()> {
    let mut lex = Lexer::new(text);
    let tok = lex.next(true)?;
    Parser {
        lex,
        tok,
        file,
        config,
        vars: HashMap::new(),
        depth: 0,
        built: 0,
    }
    .run()
}

struct Parser<'a, 'c> {
    lex: Lexer<'a>,
    /// The current token; the lexer stands just after it.
    tok: Token,
    file: &'a str,
    config: &'c mut ConfigMap,
    /// File-level `my`/`our` scalars.
    vars: HashMap<String, Value>,
    depth: usize,
    /// Bytes built by `.`, `x` and list repetition so far (see MAX_BUILT).
    built: usize,
}

impl Parser<'_, '_> {
    /// Counts what an operator built against MAX_BUILT.
    fn charge(&mut self, line: usize, bytes: usize) -> Res<()> {
        self.built = self.built.saturating_add(bytes);
        if self.built > MAX_BUILT {
            return Err(Fail {
                line,
                message: format!("strings built by this file exceed {MAX_BUILT} bytes in all"),
            });
        }
        Ok(())
    }

    fn advance(&mut self) -> Res<()> {
        self.tok = self.lex.next(false)?;
        Ok(())
    }

    /// Moves past the `;` that ends a statement; the next token may start a POD block.
    fn advance_stmt(&mut self) -> Res<()> {
        self.tok = self.lex.next(true)?;
        Ok(())
    }

    fn is(&self, p: &str) -> bool {
        matches!(&self.tok.tok, Tok::Punct(q) if *q == p)
    }

    /// The token after the current one (None if it cannot be lexed; advancing will then
    /// report that error properly).
    fn peek(&self) -> Option<Tok> {
        self.lex.clone().next(false).ok().map(|t| t.tok)
    }

    fn peek_is(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if q == p)
    }

    fn unexpected<T>(&self, expected: &str) -> Res<T> {
        fail(
            self.tok.line,
            format!(
                "syntax error: expected {expected}, found {}",
                describe(&self.tok.tok)
            ),
        )
    }

    fn run(&mut self) -> Res<()> {
        loop {
            let stmt_line = self.tok.line;
            match self.tok.tok.clone() {
                Tok::Eof => return Ok(()),
                Tok::Punct(";") => {
                    self.advance_stmt()?;
                    continue;
                }
                Tok::Ident(word) => match word.as_str() {
                    "__END__" | "__DATA__" => return Ok(()),
                    // Module loading and package switches change nothing in %CONFIG.
                    "use" | "no" | "package" => {
                        self.skip_statement()?;
                        continue;
                    }
                    "require" => {
                        self.require(stmt_line)?;
                        continue;
                    }
                    "return" => {
                        self.advance()?;
                        if !self.is(";") && self.tok.tok != Tok::Eof {
                            self.parse_expr()?;
                        }
                        // Checked so that `return 1 if ...;` is not silently cut short.
                        self.end_statement()?;
                        return Ok(());
                    }
                    "my" | "our" => self.declaration(word == "my", stmt_line)?,
                    "sub" if matches!(self.peek(), Some(Tok::Ident(_))) => {
                        // A named sub: its body is never run, and it needs no ';'.
                        self.lex.skip_sub(stmt_line)?;
                        self.lex.after_term = false;
                        self.advance_stmt()?;
                        continue;
                    }
                    _ => {
                        self.parse_expr()?;
                    }
                },
                Tok::Hash(name) if name == "CONFIG" => {
                    self.advance()?;
                    self.assign_hash(stmt_line)?;
                }
                Tok::Scalar(name) if name == "CONFIG" && self.peek_is("{") => {
                    self.assign_config_element()?
                }
                Tok::Scalar(_) if self.peek().is_some_and(|t| is_assignment(&t)) => {
                    self.assign_variable()?
                }
                _ => {
                    self.parse_expr()?;
                }
            }
            self.end_statement()?;
        }
    }

    fn end_statement(&mut self) -> Res<()> {
        match self.tok.tok {
            Tok::Punct(";") => self.advance_stmt(),
            Tok::Eof => Ok(()),
            _ => self.unexpected("';' after statement"),
        }
    }

    fn skip_statement(&mut self) -> Res<()> {
        loop {
            match self.tok.tok {
                Tok::Eof => return Ok(()),
                Tok::Punct(";") => return self.advance_stmt(),
                _ => self.advance()?,
            }
        }
    }

    /// `require Module;` and `require 5.006;` are ignored like `use`; requiring a file
    /// would run Perl code that cannot be evaluated here, so it is reported.
    fn require(&mut self, line: usize) -> Res<()> {
        self.advance()?;
        match self.tok.tok {
            Tok::Ident(_) | Tok::Int(_) | Tok::Num(_) => self.skip_statement(),
            _ => fail(
                line,
                "unsupported construct: 'require' of a file (it would run Perl code)",
            ),
        }
    }

    fn declaration(&mut self, is_my: bool, line: usize) -> Res<()> {
        self.advance()?;
        match self.tok.tok.clone() {
            Tok::Scalar(name) if is_identifier(&name) && name != "CONFIG" => {
                self.advance()?;
                let value = if self.is("=") {
                    self.advance()?;
                    self.parse_expr()?.scalar()
                } else {
                    Value::Undef
                };
                // Inserted after evaluating: `my $x = $x` reads the older $x, as in Perl.
                self.vars.insert(name, value);
                Ok(())
            }
            Tok::Hash(name) if name == "CONFIG" && !is_my => {
                self.advance()?;
                if self.is("=") {
                    self.assign_hash(line)
                } else {
                    Ok(())
                }
            }
            Tok::Hash(name) if name == "CONFIG" => fail(
                line,
                "unsupported construct: 'my %CONFIG' would hide the real %CONFIG",
            ),
            other => fail(
                line,
                format!("unsupported construct: declaration of {}", describe(&other)),
            ),
        }
    }

    /// `%CONFIG = LIST;` (the current token is `=`): the whole hash is replaced.
    fn assign_hash(&mut self, line: usize) -> Res<()> {
        if !self.is("=") {
            return self.unexpected("'=' after %CONFIG");
        }
        self.advance()?;
        let items = self.parse_expr()?.into_list();
        if items.len() % 2 != 0 {
            return fail(
                line,
                "odd number of elements in %CONFIG assignment (a key without a value)",
            );
        }
        self.config.clear();
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            self.config.insert(key.to_perl_string(), value);
        }
        Ok(())
    }

    /// `$CONFIG{KEY} op= EXPR;`
    fn assign_config_element(&mut self) -> Res<()> {
        self.advance()?;
        let key = self.subscript_key()?;
        if !is_assignment(&self.tok.tok) {
            return self.unexpected(&format!("'=' after $CONFIG{{{}}}", clip(&key)));
        }
        let old = self.config.get(&key).cloned().unwrap_or(Value::Undef);
        let value = self.assignment(old)?;
        self.config.insert(key, value);
        Ok(())
    }

    /// `$name op= EXPR;` for a declared lexical.
    fn assign_variable(&mut self) -> Res<()> {
        let Tok::Scalar(name) = self.tok.tok.clone() else {
            return self.unexpected("a variable");
        };
        let Some(old) = self.vars.get(&name).cloned() else {
            return fail(self.tok.line, format!("unknown variable ${name}"));
        };
        self.advance()?;
        let value = self.assignment(old)?;
        self.vars.insert(name, value);
        Ok(())
    }

    /// Reads an assignment operator and its right side, and returns the new value.
    fn assignment(&mut self, old: Value) -> Res<Value> {
        let line = self.tok.line;
        let op = match self.tok.tok {
            Tok::Punct(p) => assignment_op(p).ok_or_else(|| Fail {
                line,
                message: format!("unsupported construct: '{p}'"),
            })?,
            _ => return self.unexpected("'='"),
        };
        self.advance()?;
        let rhs = self.parse_expr()?.scalar();
        match op {
            None => Ok(rhs),
            Some(op) => {
                let v = binop(op, old, rhs).map_err(|message| Fail { line, message })?;
                self.charge(line, value_bytes(&v))?;
                Ok(v)
            }
        }
    }

    /// `{KEY}` after `$CONFIG`: a lone bareword is a string, anything else an expression.
    fn subscript_key(&mut self) -> Res<String> {
        let open_line = self.tok.line;
        if !self.is("{") {
            return self.unexpected("'{'");
        }
        self.advance()?;
        if let Tok::Ident(word) = &self.tok.tok {
            let word = word.clone();
            if self.peek_is("}") {
                self.advance()?;
                self.advance()?;
                return Ok(word);
            }
            let expression_word = builtin(&word).is_some()
                || matches!(word.as_str(), "__FILE__" | "__LINE__" | "undef");
            if !expression_word {
                let found = self
                    .peek()
                    .map_or_else(|| "an invalid token".to_string(), |t| describe(&t));
                return fail(
                    self.tok.line,
                    format!(
                        "syntax error: expected '}}' after $CONFIG{{{}, found {found}",
                        clip(&word)
                    ),
                );
            }
        }
        if self.tok.tok == Tok::Eof {
            return fail(
                open_line,
                "syntax error: unclosed '{' after $CONFIG (reached end of file)",
            );
        }
        let key = self.parse_expr()?.scalar().to_perl_string();
        if self.tok.tok == Tok::Eof {
            return fail(
                open_line,
                "syntax error: unclosed '{' after $CONFIG (reached end of file)",
            );
        }
        if !self.is("}") {
            return self.unexpected("'}' to close $CONFIG{...");
        }
        self.advance()?;
        Ok(key)
    }

    /// Additive level: `+ - .`, left associative.
    fn parse_expr(&mut self) -> Res<Ev> {
        let mut lhs = self.parse_multiplicative()?;
        loop {
            let op = match self.tok.tok {
                Tok::Punct(p @ ("+" | "-" | ".")) => p,
                _ => return Ok(lhs),
            };
            let line = self.tok.line;
            self.advance()?;
            let rhs = self.parse_multiplicative()?.scalar();
            let v = binop(op, lhs.scalar(), rhs).map_err(|message| Fail { line, message })?;
            self.charge(line, value_bytes(&v))?;
            lhs = Ev::One(v);
        }
    }

    /// `* / % x`, left associative. `x` on a parenthesised list repeats the list.
    fn parse_multiplicative(&mut self) -> Res<Ev> {
        let mut lhs = self.parse_unary()?;
        loop {
            let op = match self.tok.tok {
                Tok::Punct(p @ ("*" | "/" | "%" | "x")) => p,
                _ => return Ok(lhs),
            };
            let line = self.tok.line;
            self.advance()?;
            let rhs = self.parse_unary()?.scalar();
            let result = match (op, lhs) {
                ("x", Ev::Many(items)) => {
                    let scalar = items.last().cloned().unwrap_or(Value::Undef);
                    repeat_list(items, &rhs).and_then(|list| {
                        let scalar = binop("x", scalar, rhs)?;
                        Ok(Ev::Repeat { list, scalar })
                    })
                }
                (_, lhs) => binop(op, lhs.scalar(), rhs).map(Ev::One),
            };
            lhs = result.map_err(|message| Fail { line, message })?;
            let bytes = match &lhs {
                Ev::One(v) => value_bytes(v),
                Ev::Repeat { list, scalar } => value_bytes(scalar).saturating_add(list_bytes(list)),
                Ev::Many(items) => list_bytes(items),
            };
            self.charge(line, bytes)?;
        }
    }

    /// Every recursive path goes through here, so this is where nesting is bounded.
    fn parse_unary(&mut self) -> Res<Ev> {
        if self.depth >= MAX_DEPTH {
            return fail(
                self.tok.line,
                format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
            );
        }
        self.depth += 1;
        let result = self.parse_unary_inner();
        self.depth -= 1;
        result
    }

    /// Unary minus binds looser than `**` (`-2**2` is -4) but `**` accepts a signed right
    /// operand (`2**-1`) and is right associative (`2**3**2` is 512).
    fn parse_unary_inner(&mut self) -> Res<Ev> {
        let line = self.tok.line;
        if self.is("-") {
            self.advance()?;
            let v = self.parse_unary()?.scalar();
            return negate(v)
                .map(Ev::One)
                .map_err(|message| Fail { line, message });
        }
        if self.is("+") {
            self.advance()?;
            return self.parse_unary();
        }
        let base = self.parse_primary()?;
        if !self.is("**") {
            return Ok(base);
        }
        let line = self.tok.line;
        self.advance()?;
        let exponent = self.parse_unary()?.scalar();
        binop("**", base.scalar(), exponent)
            .map(Ev::One)
            .map_err(|message| Fail { line, message })
    }

    fn parse_primary(&mut self) -> Res<Ev> {
        let Token { tok, line, start } = self.tok.clone();
        let one = |v: Value| Ok(Ev::One(v));
        match tok {
            Tok::Int(i) => {
                self.advance()?;
                one(Value::Int(i))
            }
            Tok::Num(f) => {
                self.advance()?;
                one(Value::Num(f))
            }
            Tok::Str(s) => {
                self.advance()?;
                one(Value::Str(s))
            }
            Tok::Interp { body, line } => {
                let s = self.interpolate(&body, line)?;
                self.advance()?;
                one(Value::Str(s))
            }
            Tok::Words(words) => {
                self.advance()?;
                Ok(Ev::Many(words.into_iter().map(Value::Str).collect()))
            }
            Tok::Scalar(name) => {
                self.advance()?;
                self.scalar_term(&name, line)
            }
            Tok::Hash(name) if name == "CONFIG" => {
                self.advance()?;
                let pairs = self
                    .config
                    .iter()
                    .flat_map(|(k, v)| [Value::Str(k.clone()), v.clone()]);
                Ok(Ev::Many(pairs.collect()))
            }
            Tok::Hash(name) => fail(line, format!("unsupported construct: hash '%{name}'")),
            Tok::Array(name) => fail(line, format!("unsupported construct: array '@{name}'")),
            Tok::Punct("(") => {
                self.advance()?;
                // Even `(1)` is a list: `(1) x 3` repeats it in list context.
                Ok(Ev::Many(self.parse_list(")", line)?))
            }
            Tok::Punct("[") => {
                self.advance()?;
                let items = self.parse_list("]", line)?;
                self.subscripts(Value::List(items), false)
            }
            Tok::Punct("{") => fail(line, "unsupported construct: hash reference '{...}'"),
            Tok::Punct("\\") => fail(line, "unsupported construct: reference '\\'"),
            Tok::Punct("<<") => fail(line, "unsupported construct: here-document '<<'"),
            Tok::Punct("`") => fail(line, "unsupported construct: command '`...`'"),
            Tok::Ident(word) => self.word_term(&word, line, start),
            Tok::Eof => fail(
                line,
                "syntax error: unexpected end of file, expected a value",
            ),
            other => fail(
                line,
                format!("syntax error: unexpected {}", describe(&other)),
            ),
        }
    }

    /// `$CONFIG{KEY}` or a lexical `$name`, with optional `->[i]` / `[i]` indexing.
    fn scalar_term(&mut self, name: &str, line: usize) -> Res<Ev> {
        if name == "CONFIG" && self.is("{") {
            let key = self.subscript_key()?;
            let value = self.config.get(&key).cloned().unwrap_or(Value::Undef);
            return self.subscripts(value, true);
        }
        if self.is("{") {
            return fail(
                line,
                format!("unsupported construct: hash element '${name}{{...}}'"),
            );
        }
        if self.is("[") {
            return fail(
                line,
                format!("unsupported construct: array element '${name}[...]'"),
            );
        }
        match self.vars.get(name) {
            Some(value) => {
                let value = value.clone();
                self.subscripts(value, false)
            }
            None => fail(line, format!("unknown variable ${name}")),
        }
    }

    /// Array indexing after a value. Between subscripts the arrow is optional, as in Perl
    /// (`$CONFIG{WAIT_ADDR}[0]`); after a plain `$name`, `[` would mean `@name`.
    fn subscripts(&mut self, mut value: Value, mut bare_bracket: bool) -> Res<Ev> {
        loop {
            if self.is("->") {
                if !self.peek_is("[") {
                    return fail(
                        self.tok.line,
                        "unsupported construct: '->' other than '->[...]'",
                    );
                }
                self.advance()?;
            } else if !(bare_bracket && self.is("[")) {
                return Ok(Ev::One(value));
            }
            let line = self.tok.line;
            self.advance()?;
            let index = self.parse_expr()?.scalar();
            if !self.is("]") {
                return self.unexpected("']' after array index");
            }
            self.advance()?;
            value = index_value(value, &index).map_err(|message| Fail { line, message })?;
            bare_bracket = true;
        }
    }

    fn word_term(&mut self, word: &str, line: usize, start: usize) -> Res<Ev> {
        match word {
            "undef" => {
                self.advance()?;
                if self.is("(") {
                    return fail(line, "unsupported construct: 'undef(...)'");
                }
                return Ok(Ev::One(Value::Undef));
            }
            "__FILE__" => {
                self.advance()?;
                return Ok(Ev::One(Value::Str(self.file.to_string())));
            }
            "__LINE__" => {
                self.advance()?;
                return Ok(Ev::One(Value::Int(i64::try_from(line).unwrap_or(i64::MAX))));
            }
            "sub" => {
                // The lexer stands right after `sub` (peeking never moves it).
                let end = self.lex.skip_sub(line)?;
                let text = self.lex.src.get(start..end).unwrap_or("").to_string();
                self.lex.after_term = true;
                self.advance()?;
                return Ok(Ev::One(Value::Code(text)));
            }
            _ => {}
        }
        if let Some(f) = builtin(word) {
            self.advance()?;
            if !self.is("(") {
                return fail(
                    line,
                    format!("unsupported construct: '{word}' without parentheses"),
                );
            }
            let open_line = self.tok.line;
            self.advance()?;
            let args = self.parse_list(")", open_line)?;
            return call_builtin(f, word, &args)
                .map(Ev::One)
                .map_err(|message| Fail { line, message });
        }
        if self.peek_is("(") {
            fail(line, format!("unsupported construct: '{word}(...)'"))
        } else {
            fail(line, format!("unsupported construct: bareword '{word}'"))
        }
    }

    /// A comma list up to `close` (the opening bracket is already consumed). `,` and `=>`
    /// both separate, empty elements and a trailing comma are allowed, and nested
    /// parenthesised lists flatten.
    fn parse_list(&mut self, close: &'static str, open_line: usize) -> Res<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            match &self.tok.tok {
                Tok::Punct(p) if *p == close => {
                    self.advance()?;
                    break;
                }
                Tok::Punct("," | "=>") => {
                    self.advance()?;
                    continue;
                }
                Tok::Eof => {
                    let open = if close == ")" { "(" } else { "[" };
                    return fail(
                        open_line,
                        format!("syntax error: unclosed '{open}' (reached end of file)"),
                    );
                }
                // A bareword before `=>` is a string, whatever the word.
                Tok::Ident(word) if self.peek_is("=>") => {
                    items.push(Value::Str(word.clone()));
                    self.advance()?;
                }
                _ => items.extend(self.parse_expr()?.into_list()),
            }
            match &self.tok.tok {
                Tok::Punct(p) if *p == close || *p == "," || *p == "=>" => {}
                Tok::Eof => {}
                _ => return self.unexpected(&format!("',' or '{close}' in list")),
            }
        }
        Ok(items)
    }

    /// Double-quoted string contents: escapes, `$name`, `${name}` and `$CONFIG{KEY}`.
    /// Everything else Perl would interpolate is an error, never silently empty.
    fn interpolate(&self, body: &str, first_line: usize) -> Res<String> {
        let cs: Vec<char> = body.chars().collect();
        let mut out = String::with_capacity(body.len());
        let mut line = first_line;
        let mut i = 0;
        while let Some(&c) = cs.get(i) {
            i += 1;
            match c {
                '\n' => {
                    line += 1;
                    out.push('\n');
                }
                '\\' => i = unescape_double(&cs, i, &mut line, &mut out)?,
                '$' => i = self.interpolate_scalar(&cs, i, line, &mut out)?,
                '@' if cs.get(i).is_some_and(|n| {
                    n.is_ascii_alphanumeric() || matches!(n, '_' | '{' | '$' | ':' | '+' | '-')
                }) =>
                {
                    let shown: String = cs
                        .iter()
                        .skip(i)
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                        .collect();
                    return fail(
                        line,
                        format!(
                            "unsupported interpolation '@{}' in string (write \\@ for a literal @)",
                            clip(&shown)
                        ),
                    );
                }
                _ => out.push(c),
            }
        }
        Ok(out)
    }

    /// Handles what follows a `$` at `cs[i]`; returns the index after it.
    fn interpolate_scalar(
        &self,
        cs: &[char],
        i: usize,
        line: usize,
        out: &mut String,
    ) -> Res<usize> {
        let is_start = |c: &char| c.is_ascii_alphabetic() || *c == '_';
        let is_word = |c: &char| c.is_ascii_alphanumeric() || *c == '_';
        let word_end = |from: usize| from + cs.iter().skip(from).take_while(|c| is_word(c)).count();
        let text = |a: usize, b: usize| {
            cs.get(a..b)
                .map(|s| s.iter().collect::<String>())
                .unwrap_or_default()
        };
        let (name, mut j) = match cs.get(i) {
            // Perl rejects a final `$`, and reads `$ name` as `$name`.
            None => return fail(line, "final $ in string should be \\$ or $name"),
            Some(c) if c.is_whitespace() => {
                return fail(
                    line,
                    "unsupported interpolation '$ ' in string (write \\$ for a literal $)",
                )
            }
            Some('{') => {
                let close = cs.iter().skip(i).position(|c| *c == '}').map(|p| p + i);
                let inner = close.map(|e| text(i + 1, e)).unwrap_or_default();
                let inner = inner.trim();
                match close {
                    Some(e) if is_identifier(inner) => (inner.to_string(), e + 1),
                    _ => return fail(line, "unsupported interpolation '${' in string"),
                }
            }
            Some(c) if is_start(c) => {
                let end = word_end(i);
                (text(i, end), end)
            }
            Some(c) => {
                return fail(
                    line,
                    format!(
                        "unsupported interpolation '${c}' in string (write \\$ for a literal $)"
                    ),
                )
            }
        };
        if cs.get(j) == Some(&':') && cs.get(j + 1) == Some(&':') {
            let end = word_end(j + 2);
            return fail(
                line,
                format!("unknown variable ${}{} in string", name, text(j, end)),
            );
        }
        let value = if name == "CONFIG" && cs.get(j) == Some(&'{') {
            let Some(close) = cs.iter().skip(j).position(|c| *c == '}').map(|p| p + j) else {
                return fail(line, "unterminated $CONFIG{ in string");
            };
            let key = self.string_subscript(text(j + 1, close).trim(), line)?;
            j = close + 1;
            self.config.get(&key).cloned().unwrap_or(Value::Undef)
        } else {
            match self.vars.get(&name) {
                Some(v) => v.clone(),
                None => return fail(line, format!("unknown variable ${name} in string")),
            }
        };
        // Perl would read these as element accesses ("$x[0]" is an element of @x).
        let next = cs.get(j);
        let arrow = next == Some(&'-')
            && cs.get(j + 1) == Some(&'>')
            && matches!(cs.get(j + 2), Some('[' | '{'));
        if matches!(next, Some('[' | '{')) || arrow {
            return fail(
                line,
                format!("unsupported interpolation of an element access after ${name} in string"),
            );
        }
        out.push_str(&value.to_perl_string());
        Ok(j)
    }

    /// The key of `$CONFIG{...}` inside a string: a bareword, a '...' string, a number or
    /// a lexical `$name`.
    fn string_subscript(&self, inner: &str, line: usize) -> Res<String> {
        if is_identifier(inner) || (!inner.is_empty() && inner.bytes().all(|b| b.is_ascii_digit()))
        {
            return Ok(inner.to_string());
        }
        if let Some(quoted) = inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
            return Ok(unescape_single(quoted, b'\'', b'\''));
        }
        if let Some(name) = inner.strip_prefix('$').filter(|n| is_identifier(n)) {
            return match self.vars.get(name) {
                Some(v) => Ok(v.to_perl_string()),
                None => fail(line, format!("unknown variable ${name} in string")),
            };
        }
        fail(
            line,
            format!(
                "unsupported subscript '$CONFIG{{{}}}' in string",
                clip(inner)
            ),
        )
    }
}

/// Resolves the escape whose backslash precedes `cs[i]`; returns the index after it.
fn unescape_double(cs: &[char], i: usize, line: &mut usize, out: &mut String) -> Res<usize> {
    let Some(&c) = cs.get(i) else {
        out.push('\\');
        return Ok(i);
    };
    let simple = match c {
        'n' => Some('\n'),
        't' => Some('\t'),
        'r' => Some('\r'),
        'f' => Some('\x0c'),
        'a' => Some('\x07'),
        'e' => Some('\x1b'),
        _ => None,
    };
    if let Some(s) = simple {
        out.push(s);
        return Ok(i + 1);
    }
    let code_point = |v: u32| {
        char::from_u32(v).ok_or_else(|| Fail {
            line: *line,
            message: format!("invalid character code {v:#x} in string escape"),
        })
    };
    match c {
        '0'..='7' => {
            // Octal: up to three digits (`\0`, `\012`).
            let digits: String = cs
                .iter()
                .skip(i)
                .take(3)
                .take_while(|d| ('0'..='7').contains(*d))
                .collect();
            let v = u32::from_str_radix(&digits, 8).unwrap_or(0);
            out.push(code_point(v)?);
            Ok(i + digits.len())
        }
        'x' if cs.get(i + 1) == Some(&'{') => {
            let Some(close) = cs.iter().skip(i).position(|d| *d == '}').map(|p| p + i) else {
                return fail(*line, "unterminated \\x{...} escape in string");
            };
            let hex: String = cs
                .get(i + 2..close)
                .unwrap_or(&[])
                .iter()
                .filter(|d| !d.is_whitespace())
                .collect();
            let v = if hex.is_empty() {
                0
            } else {
                u32::from_str_radix(&hex, 16).map_err(|_| Fail {
                    line: *line,
                    message: format!("invalid \\x{{{}}} escape in string", clip(&hex)),
                })?
            };
            out.push(code_point(v)?);
            Ok(close + 1)
        }
        'x' => {
            let digits: String = cs
                .iter()
                .skip(i + 1)
                .take(2)
                .take_while(|d| d.is_ascii_hexdigit())
                .collect();
            let v = u32::from_str_radix(&digits, 16).unwrap_or(0);
            out.push(code_point(v)?);
            Ok(i + 1 + digits.len())
        }
        '\n' => {
            *line += 1;
            out.push('\n');
            Ok(i + 1)
        }
        // Case modifiers (\u \L \Q ...), \N{...}, \c? and the like are not supported.
        c if c.is_alphanumeric() || c == '_' => {
            fail(*line, format!("unsupported escape '\\{c}' in string"))
        }
        // A backslash before any other character stands for that character.
        c => {
            out.push(c);
            Ok(i + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/etc/realplexor/extra.conf";

    fn eval_into(text: &str, mut config: ConfigMap) -> Result<ConfigMap, PerlError> {
        eval_file(text, FILE, &mut config).map(|()| config)
    }

    fn eval(text: &str) -> Result<ConfigMap, PerlError> {
        eval_into(text, ConfigMap::new())
    }

    fn ok(text: &str) -> ConfigMap {
        match eval(text) {
            Ok(config) => config,
            Err(e) => panic!("unexpected error {e} for:\n{text}"),
        }
    }

    fn s(v: &str) -> Value {
        Value::Str(v.to_string())
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|i| s(i)).collect())
    }

    /// Evaluates `$CONFIG{V} = <expr>;` and returns V.
    fn value_of(expr: &str) -> Result<Value, PerlError> {
        let config = eval(&format!("$CONFIG{{V}} = {expr};"))?;
        Ok(config.get("V").cloned().unwrap_or(Value::Undef))
    }

    /// Same shape as the stock defaults file: one commented %CONFIG block and `return 1;`.
    const DEFAULTS_SHAPE: &str = r#"##
## Stock settings (test copy).
##
%CONFIG = (
    # Drop privileges to this account.
    SU_USER => "nobody",

    # Browser side.
    WAIT_TIMEOUT => 300,
    WAIT_MAXLEN => 1024 * 5,
    WAIT_ADDR => [
        '0.0.0.0:8088',
        # more addresses may follow here
    ],

    # Publisher side.
    IN_TIMEOUT => 20,
    IN_MAXLEN => 1024 * 200,
    IN_ADDR => [
        '127.0.0.1:10010'
    ],
    ID_BINDINGS_SERVERS => [ '127.0.0.1:11211' ],

    # Visibility hook, prototype: sub (id => $, cursor => $)
    HOOK_CHECK_VISIBILITY => undef,
    JS_WAIT_RECONNECT_DELAY => 0.01,
    JS_WAIT_URI => '/',
    CHARSET => "utf-8",
    VERBOSITY => 3,
    MAX_MEM_MB => 0,
);

return 1;
"#;

    fn defaults() -> ConfigMap {
        ok(DEFAULTS_SHAPE)
    }

    #[test]
    fn default_config_shape() {
        let c = defaults();
        let expected = [
            ("SU_USER", s("nobody")),
            ("WAIT_TIMEOUT", Value::Int(300)),
            ("WAIT_MAXLEN", Value::Int(5120)),
            ("WAIT_ADDR", list(&["0.0.0.0:8088"])),
            ("IN_TIMEOUT", Value::Int(20)),
            ("IN_MAXLEN", Value::Int(204_800)),
            ("IN_ADDR", list(&["127.0.0.1:10010"])),
            ("ID_BINDINGS_SERVERS", list(&["127.0.0.1:11211"])),
            ("HOOK_CHECK_VISIBILITY", Value::Undef),
            ("JS_WAIT_RECONNECT_DELAY", Value::Num(0.01)),
            ("JS_WAIT_URI", s("/")),
            ("CHARSET", s("utf-8")),
            ("VERBOSITY", Value::Int(3)),
            ("MAX_MEM_MB", Value::Int(0)),
        ];
        assert_eq!(c.len(), expected.len());
        for (key, value) in expected {
            assert_eq!(c.get(key), Some(&value), "{key}");
        }
        assert_eq!(c["JS_WAIT_RECONNECT_DELAY"].to_perl_string(), "0.01");
    }

    #[test]
    fn override_files_of_the_readme_form() {
        let c = eval_into(
            "$CONFIG{WAIT_ADDR} = [ '1.2.3.4:80' ];\n$CONFIG{IN_ADDR} = [ '5.6.7.8:10010' ];\nreturn 1;\n",
            defaults(),
        )
        .unwrap_or_default();
        assert_eq!(c["WAIT_ADDR"], list(&["1.2.3.4:80"]));
        assert_eq!(c["IN_ADDR"], list(&["5.6.7.8:10010"]));
        assert_eq!(c["WAIT_TIMEOUT"], Value::Int(300), "other keys are kept");
        let table: &[(&str, &str, Value)] = &[
            (
                "$CONFIG{MAX_MEM_MB} = 0.5;\n\nreturn 1;\n",
                "MAX_MEM_MB",
                Value::Num(0.5),
            ),
            (
                "$CONFIG{'OFFLINE_TIMEOUT'} = 2;",
                "OFFLINE_TIMEOUT",
                Value::Int(2),
            ),
            (
                "$CONFIG{\"CHARSET\"} = \"koi8-r\"\n",
                "CHARSET",
                s("koi8-r"),
            ),
            ("$CONFIG{ VERBOSITY } = 0; 1;", "VERBOSITY", Value::Int(0)),
            ("$main::CONFIG{VERBOSITY} = 1;", "VERBOSITY", Value::Int(1)),
            ("$::CONFIG{VERBOSITY} = 2;", "VERBOSITY", Value::Int(2)),
            (
                "$CONFIG{WAIT_ADDR} = ['a:1', 'b:2',];",
                "WAIT_ADDR",
                list(&["a:1", "b:2"]),
            ),
            (
                "$CONFIG{WAIT_ADDR} = [qw(a:1 b:2)];",
                "WAIT_ADDR",
                list(&["a:1", "b:2"]),
            ),
        ];
        for (text, key, value) in table {
            let c = ok(text);
            assert_eq!(c.get(*key), Some(value), "{text}");
        }
    }

    #[test]
    fn fixture_idiom_dirname_of_abs_path_of_file() {
        let dir = std::env::temp_dir().join(format!("perlconf-idiom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let conf = dir.join("iframe_stub.conf");
        let text = "use File::Basename;\nuse Cwd 'abs_path';\n\n$CONFIG{IFRAME_FILE} = dirname(abs_path(__FILE__)) . \"/iframe_stub.html\";\n$CONFIG{CHARSET} = \"utf-8\";\n\nreturn 1;\n";
        std::fs::write(&conf, text).unwrap_or_default();
        let mut config = ConfigMap::new();
        let result = eval_file(text, &conf.to_string_lossy(), &mut config);
        let real_dir = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        std::fs::remove_dir_all(&dir).unwrap_or_default();
        assert_eq!(result, Ok(()));
        let expected = format!("{}/iframe_stub.html", real_dir.to_string_lossy());
        assert_eq!(config.get("IFRAME_FILE"), Some(&Value::Str(expected)));
        assert_eq!(config.get("CHARSET"), Some(&s("utf-8")));
        // The qualified spellings do the same.
        let c = ok("$CONFIG{X} = File::Basename::dirname(Cwd::realpath('/a/../b/c.conf'));");
        assert_eq!(c["X"], s("/b"));
    }

    #[test]
    fn values_may_refer_to_earlier_values() {
        let c = eval_into(
            "$CONFIG{WAIT_TIMEOUT} = $CONFIG{WAIT_TIMEOUT} * 2;\n\
             $CONFIG{OFFLINE_TIMEOUT} = $CONFIG{WAIT_TIMEOUT} + 1;\n\
             $CONFIG{CHARSET} .= '-x';\n\
             $CONFIG{FIRST} = $CONFIG{WAIT_ADDR}[0];\n\
             $CONFIG{MISSING} = $CONFIG{NO_SUCH_KEY};\n\
             $CONFIG{IN_MAXLEN} /= 2;\n\
             my $base = \"/srv\";\n\
             $CONFIG{USERS_FILE} = \"$base/users-$CONFIG{VERBOSITY}.htpasswd\";\n",
            defaults(),
        )
        .unwrap_or_default();
        assert_eq!(c["WAIT_TIMEOUT"], Value::Int(600));
        assert_eq!(c["OFFLINE_TIMEOUT"], Value::Int(601));
        assert_eq!(c["CHARSET"], s("utf-8-x"));
        assert_eq!(c["FIRST"], s("0.0.0.0:8088"));
        assert_eq!(c["MISSING"], Value::Undef);
        assert_eq!(c["IN_MAXLEN"], Value::Int(102_400));
        assert_eq!(c["USERS_FILE"], s("/srv/users-3.htpasswd"));
    }

    #[test]
    fn hash_assignment_replaces_the_whole_hash() {
        let c =
            eval_into("%CONFIG = (A => 1, 'B', 2, \"C\" => [],);", defaults()).unwrap_or_default();
        assert_eq!(c.len(), 3);
        assert_eq!(c["A"], Value::Int(1));
        assert_eq!(c["B"], Value::Int(2));
        assert_eq!(c["C"], Value::List(vec![]));
        assert!(ok("%CONFIG = ();").is_empty());
        // Keeping the old contents is possible, as in Perl.
        let c = eval_into("%CONFIG = (%CONFIG, VERBOSITY => 0);", defaults()).unwrap_or_default();
        assert_eq!(c.len(), defaults().len());
        assert_eq!(c["VERBOSITY"], Value::Int(0));
        let c = eval_into("our %CONFIG;\nour %CONFIG = (X => 1);", defaults()).unwrap_or_default();
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn code_references_are_kept_as_text() {
        let text = "%CONFIG = (\n  HOOK_CHECK_VISIBILITY => sub { my $x = shift; return $x->{id} ne \"}\"; },\n  AFTER => 1,\n);\n";
        let c = ok(text);
        assert_eq!(
            c["HOOK_CHECK_VISIBILITY"],
            Value::Code("sub { my $x = shift; return $x->{id} ne \"}\"; }".to_string())
        );
        assert_eq!(c["AFTER"], Value::Int(1));
        assert_eq!(c["HOOK_CHECK_VISIBILITY"].to_perl_string(), "CODE");
        // Braces in comments and single quotes, and nested blocks, do not end the body.
        let text = "$CONFIG{H} = sub {\n  # a } in a comment\n  if ($_[0]) { return '}' }\n  return 1;\n};\n$CONFIG{N} = __LINE__;\n";
        let c = ok(text);
        assert!(
            matches!(&c["H"], Value::Code(t) if t.starts_with("sub {") && t.ends_with("return 1;\n}"))
        );
        assert_eq!(
            c["N"],
            Value::Int(6),
            "line counting continues after the body"
        );
        // A named sub is skipped as a statement.
        assert_eq!(
            ok("sub helper { return 2 }\n$CONFIG{A} = 1;")["A"],
            Value::Int(1)
        );
    }

    #[test]
    fn plain_key_value_format() {
        let text = "# plain settings\n\nWAIT_TIMEOUT = 60\n  CHARSET = \"windows-1251\"  # trailing comment\nJS_WAIT_RECONNECT_DELAY=0.5\nWAIT_ADDR = 0.0.0.0:80 1.2.3.4:80\nEMPTY =\nURI = \"/a=b\"\r\n";
        let c = eval_into(text, defaults()).unwrap_or_default();
        assert_eq!(c["WAIT_TIMEOUT"], Value::Int(60));
        assert_eq!(c["CHARSET"], s("windows-1251"));
        assert_eq!(c["JS_WAIT_RECONNECT_DELAY"], Value::Num(0.5));
        assert_eq!(c["WAIT_ADDR"], s("0.0.0.0:80 1.2.3.4:80"));
        assert_eq!(c["EMPTY"], s(""));
        assert_eq!(c["URI"], s("/a=b"));
        assert_eq!(c["VERBOSITY"], Value::Int(3), "untouched keys stay");
        // Empty and comment-only files change nothing.
        for text in ["", "\n\n", "# nothing\n  # here\n", "\u{feff}"] {
            assert_eq!(eval_into(text, defaults()), Ok(defaults()), "{text:?}");
        }
        // Perl that does not touch %CONFIG is still fine.
        assert_eq!(eval_into("use strict;\n1;\n", defaults()), Ok(defaults()));
        // Errors name the line.
        let e = eval("A = 1\nB = 2\nthis is wrong\nC = 3\n")
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        assert_eq!((e.line, e.file.as_str()), (3, FILE));
        assert!(e.message.contains("KEY = value"), "{}", e.message);
        let e = eval("A = 1\nBAD KEY = 2\n")
            .err()
            .unwrap_or_else(|| panic!("must fail"));
        assert_eq!(e.line, 2);
    }

    #[test]
    fn perl_stringification() {
        let table: &[(Value, &str)] = &[
            (Value::Num(0.01), "0.01"),
            (Value::Num(5120.0), "5120"),
            (Value::Num(1e21), "1e+21"),
            (Value::Num(0.5), "0.5"),
            (Value::Num(1e15), "1e+15"),
            (Value::Num(123_456_789_012_345.0), "123456789012345"),
            (Value::Num(0.1 + 0.2), "0.3"),
            (Value::Num(1.0 / 3.0), "0.333333333333333"),
            (Value::Num(1e-5), "1e-05"),
            (Value::Num(0.0001), "0.0001"),
            (Value::Num(2f64.sqrt()), "1.4142135623731"),
            (Value::Num(-2.5), "-2.5"),
            (Value::Num(1e100), "1e+100"),
            (
                Value::Num(1.215_766_545_905_692_9e19),
                "1.21576654590569e+19",
            ),
            (Value::Num(f64::INFINITY), "Inf"),
            (Value::Num(f64::NAN), "NaN"),
            (Value::Num(0.0), "0"),
            (Value::Num(-0.0), "0"),
            (Value::Int(0), "0"),
            (Value::Int(-42), "-42"),
            (Value::Int(i64::MAX), "9223372036854775807"),
            (Value::Undef, ""),
            (s("text"), "text"),
            (
                Value::List(vec![
                    s("a"),
                    Value::Int(1),
                    Value::Num(0.5),
                    Value::List(vec![s("b")]),
                ]),
                "a 1 0.5 b",
            ),
            (Value::Code("sub {}".into()), "CODE"),
        ];
        for (value, expected) in table {
            assert_eq!(value.to_perl_string(), *expected, "{value:?}");
        }
    }

    #[test]
    fn numeric_coercion_and_truth() {
        let table: &[(Value, f64, bool)] = &[
            (s("12abc"), 12.0, true),
            (s(""), 0.0, false),
            (s("0"), 0.0, false),
            (s("0.0"), 0.0, true),
            (s("00"), 0.0, true),
            (s(" 1.5e3x"), 1500.0, true),
            (s("-.5"), -0.5, true),
            (s("0x1F"), 0.0, true),
            (s("abc"), 0.0, true),
            (Value::Undef, 0.0, false),
            (Value::Int(0), 0.0, false),
            (Value::Int(7), 7.0, true),
            (Value::Num(0.0), 0.0, false),
            (Value::Num(0.25), 0.25, true),
            (list(&["a", "b"]), 2.0, true),
            (Value::List(vec![]), 0.0, true),
            (Value::Code(String::new()), 0.0, true),
        ];
        for (value, number, truth) in table {
            assert_eq!(value.to_f64(), *number, "{value:?}");
            assert_eq!(value.is_true(), *truth, "{value:?}");
        }
        assert!(s("inf").to_f64().is_infinite());
    }

    #[test]
    fn expressions() {
        let table: &[(&str, Value)] = &[
            ("1024 * 5", Value::Int(5120)),
            ("1_000", Value::Int(1000)),
            ("0x1F", Value::Int(31)),
            ("017", Value::Int(15)),
            ("0b101", Value::Int(5)),
            ("0.01", Value::Num(0.01)),
            ("1e3", Value::Num(1000.0)),
            (".5", Value::Num(0.5)),
            ("1.", Value::Num(1.0)),
            ("1 + 2 * 3", Value::Int(7)),
            ("(1 + 2) * 3", Value::Int(9)),
            ("10 - 2 - 3", Value::Int(5)),
            ("10 / 5", Value::Int(2)),
            ("10 / 4", Value::Num(2.5)),
            ("7 % -3", Value::Int(-2)),
            ("-7 % 3", Value::Int(2)),
            ("7.5 % 2", Value::Int(1)),
            ("2 ** 10", Value::Int(1024)),
            ("-2 ** 2", Value::Int(-4)),
            ("2 ** -1", Value::Num(0.5)),
            ("2 ** 3 ** 2", Value::Int(512)),
            ("2 * 3 ** 2", Value::Int(18)),
            ("- -3", Value::Int(3)),
            (
                "9223372036854775807 + 1",
                Value::Num(9_223_372_036_854_775_808.0),
            ),
            ("99999999999999999999", Value::Num(1e20)),
            ("'12abc' + 1", Value::Int(13)),
            ("'1.5' * 2", Value::Num(3.0)),
            ("undef + 1", Value::Int(1)),
            ("'a' . 'b' . 1 + 2", Value::Int(2)),
            ("__LINE__ x 2", s("11")),
            ("5 %3", Value::Int(2)),
            ("'v' . 1 * 2", s("v2")),
            ("'ab' x 3", s("ababab")),
            ("'-' x3", s("---")),
            ("'ab' x -1", s("")),
            ("'a' x 2 . 'b'", s("aab")),
            (
                "\"x\" x (1024 * 1024) . 'E'",
                Value::Str(format!("{}E", "x".repeat(1 << 20))),
            ),
            ("-'foo'", s("-foo")),
            ("-'-foo'", s("+foo")),
            ("-'5'", Value::Int(-5)),
            ("undef", Value::Undef),
            ("(1, 2, 3)", Value::Int(3)),
            ("(1, 2) x 2 * 3", Value::Int(66)),
            ("('a') x 2 . 'b'", s("aab")),
            ("qw(a b) x 2", s("bb")),
            ("()", Value::Undef),
            (
                "[1, [2, 3], ]",
                Value::List(vec![
                    Value::Int(1),
                    Value::List(vec![Value::Int(2), Value::Int(3)]),
                ]),
            ),
            (
                "[ (1, 2), (3) ]",
                Value::List(vec![Value::Int(1), Value::Int(2), Value::Int(3)]),
            ),
            (
                "[ ('a') x 2, ('b', 'c') x 2 ]",
                list(&["a", "a", "b", "c", "b", "c"]),
            ),
            ("[ a => 1 ]", Value::List(vec![s("a"), Value::Int(1)])),
            (
                "[ q => 1, x => 2 ]",
                Value::List(vec![s("q"), Value::Int(1), s("x"), Value::Int(2)]),
            ),
            ("[1, 2]->[1]", Value::Int(2)),
            ("__FILE__", s(FILE)),
            ("__LINE__", Value::Int(1)),
            ("dirname('/a/b/c')", s("/a/b")),
            ("basename('/x/y.conf', '.conf')", s("y")),
            ("abs_path('/a/./b//../c')", s("/a/c")),
        ];
        for (expr, expected) in table {
            assert_eq!(value_of(expr).as_ref(), Ok(expected), "{expr}");
        }
    }

    #[test]
    fn strings_and_interpolation() {
        let table: &[(&str, &str)] = &[
            (r"'it\'s \\ \n'", "it's \\ \\n"),
            (r#""a\tb\n\\\"\$\@\0""#, "a\tb\n\\\"$@\0"),
            (r#""\x41\x{263A}\101\e""#, "A\u{263A}A\x1b"),
            (r#""cost: 5\$ \/ \. @ a@""#, "cost: 5$ / . @ a@"),
            (r#""user\@example.com""#, "user@example.com"),
            ("q(a (nested) b)", "a (nested) b"),
            ("q{x\\}y}", "x}y"),
            ("q!a!", "a"),
            ("qq{<$CONFIG{W}>}", "<7>"),
            ("qq <${name}_1>", "/srv_1"),
            (
                r#""$name/$CONFIG{W}/$CONFIG{'W'}/$CONFIG{$key}/$name-x""#,
                "/srv/7/7/7//srv-x",
            ),
            ("\"multi\nline\"", "multi\nline"),
            ("\"$CONFIG{MISSING}|\"", "|"),
            ("\"$CONFIG{L}\"", "a b"),
        ];
        let prelude =
            "$CONFIG{W} = 7; $CONFIG{L} = ['a', 'b']; my $name = '/srv'; my $key = 'W';\n";
        for (expr, expected) in table {
            let c = eval(&format!("{prelude}$CONFIG{{V}} = {expr};"));
            assert_eq!(
                c.map(|c| c.get("V").cloned()),
                Ok(Some(s(expected))),
                "{expr}"
            );
        }
    }

    #[test]
    fn statements() {
        let text = "=pod\n\n$CONFIG{IN_POD} = 1;\n\n=cut\nuse strict;\nuse warnings;\nno warnings 'once';\nuse POSIX qw(strftime);\nuse lib \"$FindBin::Bin/lib\";\nrequire Cwd;\nrequire 5.006;\npackage main;\nmy $x;\nour $y = 2;\n$y += 3;\nmy $z = $y * 2;\n$x = \"set\";\n;;\n1;\n$CONFIG{Z} = $z;\n$CONFIG{X} = $x;\n$CONFIG{LAST} = 'no semicolon'";
        let c = ok(text);
        assert_eq!(c.get("IN_POD"), None);
        assert_eq!(c["Z"], Value::Int(10));
        assert_eq!(c["X"], s("set"));
        assert_eq!(c["LAST"], s("no semicolon"));
        // `return` and `__END__` end the file; what follows is never read.
        let c = ok("$CONFIG{A} = 1;\nreturn 1;\n$CONFIG{B} = 2;\n");
        assert_eq!((c.len(), c.get("B")), (1, None));
        let c = ok("$CONFIG{A} = 1;\n__END__\n$CONFIG{B} = ???\n");
        assert_eq!((c.len(), c.get("B")), (1, None));
        let c = ok("$CONFIG{A} = 1;\nreturn\n");
        assert_eq!(c.len(), 1);
        // A later `my` shadows; the initialiser still sees the old value.
        let c = ok("my $v = 1; my $v = $v + 1; $CONFIG{V} = $v;");
        assert_eq!(c["V"], Value::Int(2));
    }

    fn error_of(text: &str) -> PerlError {
        match eval(text) {
            Ok(c) => panic!("expected an error for:\n{text}\ngot {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn errors_name_the_line_and_the_construct() {
        let table: &[(&str, usize, &str)] = &[
            (
                "$CONFIG{A} = 1;\n$CONFIG{B} = 2;\n$CONFIG{C} = \"abc;\n$CONFIG{D} = 4;\n",
                3,
                "unterminated string",
            ),
            (
                "$CONFIG{A} = 1;\nsystem(\"rm\");\n",
                2,
                "unsupported construct: 'system(...)'",
            ),
            (
                "$CONFIG{A} = 1;\n$CONFIG{B} = 2\n$CONFIG{C} = 3;\n",
                3,
                "expected ';' after statement, found '$CONFIG'",
            ),
            (
                "$CONFIG{A} = 1\nfoo;\n",
                2,
                "expected ';' after statement, found 'foo'",
            ),
            ("my $x = 1;\n\n$CONFIG{A} = $y;\n", 3, "unknown variable $y"),
            (
                "$CONFIG{A} = 1;\n$CONFIG{B} = \"a\n$nope\";\n",
                3,
                "unknown variable $nope in string",
            ),
            ("$CONFIG{A} = 1;\n$CONFIG{\n", 2, "unclosed '{'"),
            (
                "$CONFIG{A} = 1;\n$CONFIG{WAIT_ADDR",
                2,
                "expected '}' after $CONFIG{WAIT_ADDR, found end of file",
            ),
            ("$CONFIG{WAIT_ADDR = 1;\n", 1, "expected '}'"),
            ("$CONFIG{A} = [1,\n2,\n", 1, "unclosed '['"),
            ("$CONFIG{A} = (1 + \n", 2, "unexpected end of file"),
            ("$CONFIG{A} = 1 / 0;", 1, "Illegal division by zero"),
            ("\n$CONFIG{A} = 1 % 0;", 2, "Illegal modulus zero"),
            (
                "$CONFIG{A} = 'a' - [];",
                1,
                "arithmetic on an array reference",
            ),
            ("$CONFIG{A} = 08;", 1, "illegal octal digit '8'"),
            ("$x = 1;", 1, "unknown variable $x"),
            ("$CONFIG{A} = nobody;", 1, "bareword 'nobody'"),
            (
                "$CONFIG{A} = dirname '/x';",
                1,
                "'dirname' without parentheses",
            ),
            (
                "$CONFIG{A} = dirname('/x', '/y');",
                1,
                "dirname() got 2 arguments",
            ),
            ("%CONFIG = (A => 1, 'B');", 1, "odd number of elements"),
            (
                "%CONFIG = (A => 1 B => 2);",
                1,
                "expected ',' or ')' in list, found 'B'",
            ),
            ("$CONFIG{A} ||= 1;", 1, "unsupported construct: '||='"),
            (
                "$CONFIG{A}[0] = 1;",
                1,
                "expected '=' after $CONFIG{A}, found '['",
            ),
            ("$CONFIG{A} = $ENV{HOME};", 1, "hash element '$ENV{...}'"),
            ("$CONFIG{A} = {a => 1};", 1, "hash reference"),
            ("$CONFIG{A} = @list;", 1, "array '@list'"),
            (
                "$CONFIG{A} = \"a@b.c\";",
                1,
                "unsupported interpolation '@b'",
            ),
            (
                "$CONFIG{A} = \"x$>y\";",
                1,
                "unsupported interpolation '$>'",
            ),
            (
                "$CONFIG{A} = \"5$ x\";",
                1,
                "unsupported interpolation '$ '",
            ),
            ("$CONFIG{A} = \"5$\";", 1, "final $"),
            (
                "$CONFIG{A} = \"x@1y\";",
                1,
                "unsupported interpolation '@1y'",
            ),
            ("$CONFIG{A} = \"x@-y\";", 1, "unsupported interpolation '@'"),
            (
                "$CONFIG{A} = \"$x[0]\";",
                1,
                "unknown variable $x in string",
            ),
            ("my $x = 1;\n$CONFIG{A} = \"$x[0]\";", 2, "element access"),
            (
                "$CONFIG{A} = \"\\u$CONFIG{B}\";",
                1,
                "unsupported escape '\\u'",
            ),
            ("$CONFIG{A} = <<EOF;\nx\nEOF\n", 1, "here-document"),
            ("$CONFIG{A} = `ls`;", 1, "command"),
            ("$CONFIG{A} = 1 if 1;", 1, "found 'if'"),
            ("return 1 if $x;", 1, "found 'if'"),
            ("require 'other.pl';", 1, "'require' of a file"),
            ("my %CONFIG = ();", 1, "would hide"),
            ("$CONFIG{A} = sub ;", 1, "'sub' without a block"),
            ("$CONFIG{A} = sub { 1;\n", 1, "unterminated 'sub' body"),
            ("$CONFIG{A} = 1;\n\n  \u{fffd};", 3, "unexpected character"),
            ("$CONFIG{A} = 'x' x 1e12;", 1, "string repetition longer"),
            // Found by the config fuzzer's memory growth: a list of big strings repeated
            // (1M copies of a 60 MB string) is refused before anything is copied, and the
            // values of a whole file are bounded together.
            (
                "$CONFIG{A} = ('x' x 1000) x 100000;",
                1,
                "list repetition longer than 67108864 bytes",
            ),
            (
                "$CONFIG{A} = 'x' x 5e7;\n$CONFIG{B} = 'x' x 5e7;\n$CONFIG{C} = 'y' x 5e7;",
                3,
                "exceed 134217728 bytes in all",
            ),
        ];
        for (text, line, message) in table {
            let e = error_of(text);
            assert_eq!(e.line, *line, "line for {text:?}: {e}");
            assert!(e.message.contains(message), "message for {text:?}: {e}");
            assert_eq!(e.file, FILE);
        }
    }

    #[test]
    fn fixture_that_writes_a_file_is_rejected_loudly() {
        let text = "use File::Basename;\nuse Cwd 'abs_path';\n\nmy $tmp = \"/tmp/large.$>.tmp\";\nopen(F, '>', $tmp);\n$CONFIG{IFRAME_FILE} = $tmp;\n\nreturn 1;\n";
        let e = error_of(text);
        assert_eq!(e.line, 4);
        assert!(e.message.contains("'$>'"), "{e}");
        let e = error_of("open(F, '>', '/tmp/x');\n$CONFIG{A} = 1;");
        assert_eq!(
            (e.line, e.message.as_str()),
            (1, "unsupported construct: 'open(...)'")
        );
    }

    #[test]
    fn error_display_format() {
        let e = PerlError {
            file: "/x/y.conf".into(),
            line: 7,
            message: "syntax error: boom".into(),
        };
        assert_eq!(e.to_string(), "/x/y.conf:7: syntax error: boom");
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert!(boxed.to_string().starts_with("/x/y.conf:7:"));
    }

    #[test]
    fn file_basename_like_perl() {
        // Expected values are Perl's own File::Basename results.
        let table: &[(&str, &str, &str)] = &[
            ("/a/b/c", "/a/b", "c"),
            ("/a/b/", "/a", "b"),
            ("a", ".", "a"),
            ("a/", ".", "a"),
            ("/", "/", "/"),
            ("", ".", "./"),
            ("//a//", "/", "a"),
            ("a/b", "a", "b"),
            ("./x", ".", "x"),
            ("..", ".", ".."),
            ("/a//b///", "/a", "b"),
        ];
        for (path, dir, base) in table {
            assert_eq!(dirname(path), *dir, "dirname {path:?}");
            assert_eq!(basename(path, &[]), *base, "basename {path:?}");
        }
        let sfx = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(basename(".conf", &sfx(&[".conf"])), ".conf");
        assert_eq!(basename("a.tar.gz", &sfx(&[".gz", ".tar"])), "a");
    }

    #[test]
    fn abs_path_normalises_missing_paths() {
        assert_eq!(normalize_path("/a/./b/../../../c//d/"), "/c/d");
        assert_eq!(normalize_path("a/../../b"), "../b");
        assert_eq!(normalize_path("."), ".");
        assert_eq!(abs_path("/no-such-dir-xyz/./q/../f"), "/no-such-dir-xyz/f");
        let cwd = std::env::current_dir().unwrap_or_default();
        let cwd = std::fs::canonicalize(&cwd).unwrap_or(cwd);
        assert_eq!(
            abs_path("no-such-file-xyz"),
            format!("{}/no-such-file-xyz", cwd.to_string_lossy())
        );
        assert_eq!(abs_path("/"), "/");
    }

    /// A tiny deterministic PRNG so the hostile-input test needs no crates.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }
    }

    fn mutate(rng: &mut XorShift, seeds: &[&str]) -> Vec<u8> {
        const INTERESTING: &[u8] = b"{}[]()'\"$%@#;,=>\\\n qwx-*/.0123456789_eE=cut\xff\xc3\xa9";
        let mut data = seeds[rng.below(seeds.len())].as_bytes().to_vec();
        for _ in 0..1 + rng.below(6) {
            let len = data.len();
            match rng.below(6) {
                0 if len > 0 => {
                    let i = rng.below(len);
                    data[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let i = rng.below(len + 1);
                    data.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
                }
                2 if len > 0 => {
                    let a = rng.below(len);
                    let b = (a + 1 + rng.below(16)).min(len);
                    data.drain(a..b);
                }
                3 => data.truncate(rng.below(len + 1)),
                4 => {
                    let other = seeds[rng.below(seeds.len())].as_bytes();
                    let a = rng.below(other.len());
                    let b = (a + rng.below(64)).min(other.len());
                    let at = rng.below(len + 1);
                    data.splice(at..at, other[a..b].iter().copied());
                }
                _ if len > 0 => {
                    let a = rng.below(len);
                    let b = (a + rng.below(32)).min(len);
                    let chunk = data[a..b].to_vec();
                    let at = rng.below(len + 1);
                    data.splice(at..at, chunk);
                }
                _ => {}
            }
        }
        data
    }

    #[test]
    fn hostile_mutations_never_panic() {
        let seeds = [
            DEFAULTS_SHAPE,
            "$CONFIG{WAIT_ADDR} = [ '1.2.3.4:80' ];\nreturn 1;\n",
            "use File::Basename;\nuse Cwd 'abs_path';\n$CONFIG{IFRAME_FILE} = dirname(abs_path(__FILE__)) . \"/iframe_stub.html\";\n",
            "%CONFIG = (H => sub { my $x = shift; return $x->{id} ne \"}\"; }, N => -2 ** 3 % 5 x 2, Q => qq{a$CONFIG{H}b}, W => [qw(a b)]);\n",
            "=head1 X\n\n=cut\nmy $v = 0x1F . \"\\x{41}\\t$CONFIG{A}\"; our $w = q(a(b)c) x 3; $v .= $w; $CONFIG{V} = $v;\n__END__\njunk",
            "# plain\nWAIT_TIMEOUT = 60\nCHARSET = \"utf-8\"\n",
        ];
        let base = defaults();
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for round in 0..20_000 {
            let data = mutate(&mut rng, &seeds);
            let text = String::from_utf8_lossy(&data).into_owned();
            let mut config = base.clone();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                eval_file(&text, "/tmp/fuzz.conf", &mut config)
            }));
            match outcome {
                Err(_) => panic!("round {round}: eval_file panicked on {text:?}"),
                Ok(Err(e)) => assert!(
                    e.line >= 1 && e.line <= text.split('\n').count() + 1,
                    "round {round}: line {} out of range for {text:?}",
                    e.line
                ),
                Ok(Ok(())) => {}
            }
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = [
            format!("$CONFIG{{A}} = {};", "[".repeat(10_000)),
            format!("$CONFIG{{A}} = {};", "(".repeat(10_000)),
            format!("$CONFIG{{A}} = {};", "[(".repeat(5_000)),
            format!("$CONFIG{{A}} = {}1;", "- ".repeat(10_000)),
            format!("$CONFIG{{A}} = 2{};", " ** 2".repeat(10_000)),
            format!(
                "$CONFIG{{A}} = {}1{};",
                "[".repeat(10_000),
                "]".repeat(10_000)
            ),
            format!("%CONFIG = {};", "(".repeat(10_000)),
            format!(
                "$CONFIG{{A}} = {}'x'{};",
                "$CONFIG{".repeat(10_000),
                "}".repeat(10_000)
            ),
        ];
        for text in &deep {
            let e = error_of(text);
            assert_eq!(e.line, 1);
            assert!(e.message.contains("nested too deeply"), "{}", e.message);
        }
        // Nesting within the limit is fine.
        let c = ok(&format!(
            "$CONFIG{{A}} = {}1{};",
            "[".repeat(40),
            "]".repeat(40)
        ));
        assert!(matches!(c["A"], Value::List(_)));
    }
}
