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
//! Files (each opens with its own job, data shape and what it may use):
//! * `mod.rs` (this file): the public API (`eval_file`, `Value`, `ConfigMap`,
//!   `PerlError`) and the small error type (`Fail`) every part reports with;
//! * `plain.rs`: the C++ port's plain `KEY = value` format;
//! * `lexer.rs`: the lazy tokenizer;
//! * `parser.rs`: statements (the file, top to bottom) and `%CONFIG` assignments;
//! * `expr.rs`: expressions (operators, terms, lists, subscripts, builtin calls);
//! * `strings.rs`: double-quoted string interpolation and escapes;
//! * `numbers.rs`: Perl's numbers: numification, arithmetic, `%.15g` formatting;
//! * `builtins.rs`: the functions a config may call (`dirname`, `basename`, `abs_path`);
//! * `tests/`: the unit tests, one file per job.
//!
//! The module is self-contained: it uses only `std` and nothing else from this crate.

mod builtins;
mod expr;
mod lexer;
mod numbers;
mod parser;
mod plain;
mod strings;
#[cfg(test)]
mod tests;

use numbers::{format_num, parse_numeric_prefix};
use parser::{eval_perl, Report};
use plain::{mentions_config, parse_plain};
use std::collections::BTreeMap;
use std::fmt;

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

    /// The number a scalar holds, if it is one in Perl's `looks_like_number` sense: an Int,
    /// a Num, or a string that is wholly a number (surrounding whitespace allowed). Undef,
    /// lists, code and other strings (`"1 minute"`, `""`) give None.
    pub fn looks_like_number(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Num(f) => Some(*f),
            Value::Str(s) => match parse_numeric_prefix(s) {
                (n, true) => Some(n.as_f64()),
                (_, false) => None,
            },
            Value::Undef | Value::List(_) | Value::Code(_) => None,
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

/// How `eval_file_with` treats a file.
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalOptions {
    /// `%CONFIG = (...)` adds its pairs to the keys already set instead of replacing the
    /// whole hash as Perl would, with a warning when that keeps keys Perl would drop: an
    /// override file written in the style of the default file then changes what it lists,
    /// instead of wiping every default.
    pub merge_hash_assignment: bool,
}

/// What evaluating a file reports besides the values it set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluated {
    /// Warnings to log, each `file:line: message`.
    pub warnings: Vec<String>,
    /// The line of the statement that last set each key in this file (for errors about a
    /// value, which the caller checks later).
    pub lines: BTreeMap<String, usize>,
}

/// Evaluates one config file's text into `config`, as Perl's `do FILE` would when the file
/// assigns to %CONFIG.
/// `file` is the file's path as it should appear in errors and as `__FILE__` (the caller
/// passes an absolute path).
/// On error, `config` may be partially modified; the caller works on a copy.
pub fn eval_file(text: &str, file: &str, config: &mut ConfigMap) -> Result<(), PerlError> {
    eval_file_with(text, file, config, EvalOptions::default()).map(|_| ())
}

/// `eval_file` with options, returning the warnings and the line that set each key.
pub fn eval_file_with(
    text: &str,
    file: &str,
    config: &mut ConfigMap,
    options: EvalOptions,
) -> Result<Evaluated, PerlError> {
    // Perl skips a UTF-8 byte order mark at the start of a source file.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let to_error = |f: Fail| PerlError {
        file: file.to_string(),
        line: f.line,
        message: f.message,
    };
    let to_evaluated = |r: Report| Evaluated {
        warnings: r
            .notes
            .into_iter()
            .map(|(line, message)| format!("{file}:{line}: {message}"))
            .collect(),
        lines: r.lines,
    };
    // The C++ port's rule: a file that never mentions %CONFIG/$CONFIG outside a comment is a
    // plain `KEY = value` list.
    if mentions_config(text) {
        return eval_perl(text, file, config, options)
            .map(to_evaluated)
            .map_err(to_error);
    }
    match parse_plain(text) {
        Ok(triples) => {
            let mut lines = BTreeMap::new();
            for (line, key, value) in triples {
                lines.insert(key.clone(), line);
                config.insert(key, value);
            }
            Ok(Evaluated {
                warnings: Vec::new(),
                lines,
            })
        }
        Err(plain) => {
            // Not a plain list after all: it may be Perl that does not touch %CONFIG (`1;`,
            // `use strict;`), or whose only `$CONFIG` follows a `#` inside a string.
            let mut scratch = config.clone();
            match eval_perl(text, file, &mut scratch, options) {
                Ok(report) => {
                    *config = scratch;
                    Ok(to_evaluated(report))
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
