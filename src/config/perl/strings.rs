//! Double-quoted strings: escapes (`\n`, `\x{263A}`, octal...) and interpolation of
//! `$name`, `${name}` and `$CONFIG{KEY}`. Anything else Perl would interpolate (arrays,
//! element accesses, punctuation variables) is an error, never silently empty.
//!
//! Data shape: the raw body of a `"..."`/`qq` token and its first line in, the resulting
//! `String` out; reads the parser's `%CONFIG` and lexicals, changes nothing.
//!
//! Uses: `parser::Parser`, `lexer`, `super::{Value, Fail, Res, fail, clip}`.

use super::lexer::{is_identifier, unescape_single};
use super::parser::Parser;
use super::{clip, fail, Fail, Res, Value};

impl Parser<'_, '_> {
    /// Double-quoted string contents: escapes, `$name`, `${name}` and `$CONFIG{KEY}`.
    /// Everything else Perl would interpolate is an error, never silently empty.
    pub(super) fn interpolate(&self, body: &str, first_line: usize) -> Res<String> {
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
