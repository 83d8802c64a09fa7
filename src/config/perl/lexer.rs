//! The tokenizer of the Perl subset: produces one token at a time, on demand, tracking line
//! numbers, so that the parser can stop (`__END__`, `return`) or scan raw text (`sub` bodies)
//! at any point without tokenizing what it cannot read.
//!
//! Data shape: `Lexer { src, pos, line, after_term }` over the file's text yields `Token
//! { tok: Tok, line, start }`; `Tok` is a number, a string (single-quoted already unescaped,
//! double-quoted kept raw for interpolation), a variable name, a word or a punctuation mark.
//!
//! Uses: `super::{Fail, Res, fail, clip}` and `std`.

use super::{clip, fail, Res};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) line: usize,
    /// Byte offset of the token, to cut out the source text of `sub { ... }`.
    pub(super) start: usize,
}

/// Operators and punctuation, longest first. Many are not supported; they are still
/// recognised so that errors can name them.
const PUNCTS: &[&str] = &[
    "<=>", "**=", "||=", "&&=", "//=", "...", "=>", "==", "!=", "<=", ">=", "=~", "!~", "->", "++",
    "--", "**", "+=", "-=", "*=", "/=", ".=", "%=", "&&", "||", "//", "..", "::", "<<", ">>", ";",
    ",", "=", "(", ")", "[", "]", "{", "}", "+", "-", "*", "/", "%", ".", "<", ">", "!", "~", "?",
    ":", "\\", "&", "|", "^", "@", "`",
];

pub(super) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

pub(super) fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

pub(super) fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes.next().is_some_and(is_ident_start) && bytes.all(is_ident_char)
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
pub(super) fn unescape_single(raw: &str, open: u8, close: u8) -> String {
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
pub(super) struct Lexer<'a> {
    pub(super) src: &'a str,
    pub(super) pos: usize,
    pub(super) line: usize,
    /// Whether the previous token ends a term. Perl decides by this whether `%x` is a hash
    /// or a modulus, `.5` a number or a concatenation, and `x` an operator or a name.
    pub(super) after_term: bool,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(src: &'a str) -> Self {
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

    pub(super) fn next(&mut self, stmt_start: bool) -> Res<Token> {
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
    pub(super) fn skip_sub(&mut self, line: usize) -> Res<usize> {
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
