//! Checks the type and range of every known config key once both files are evaluated, so
//! that a value of the wrong kind stops the load with the file, the line, the key and what
//! was expected, instead of being converted in silence (`'1 minute'` read as 1 second,
//! `MAX_DATA_FOR_ID = 0` parking every client forever, a CR/LF in CHARSET written into
//! every reply). At startup the error stops the server; on reload the old settings stay.
//!
//! Data shape: `RULES`, a table of (key, `Kind`); `check` walks it over the evaluated
//! `ConfigMap` and, for the first value that does not fit, returns `ConfigError::Invalid`
//! located by `Origins` (key -> the file and line of the statement that last set it).
//! Unknown keys and keys without a rule (the unused ID_BINDINGS_*, the ignored hook) are
//! not checked here.
//!
//! Uses: config/perl (`Value`, `ConfigMap`), the `ConfigError` of config/mod.rs, `std`.

use super::perl::{ConfigMap, Value};
use super::ConfigError;
use std::collections::BTreeMap;

/// Where each key was last set: key -> (file, line).
pub type Origins = BTreeMap<String, (String, usize)>;

/// What a key accepts.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A number of seconds, 0 or more (a number, or a string that is wholly a number).
    Seconds,
    /// A whole number, at least `min`.
    Count { min: u64 },
    /// A number, 0 or more.
    NonNegative,
    /// A whole number of milliseconds from 0 to `max`.
    Millis { max: u64 },
    /// Any scalar (undef, a number or a string), read as true or false.
    Flag,
    /// A string (undef reads as empty), not a list or code.
    Text,
    /// A non-empty string.
    NonEmptyText,
    /// The marker name: letters, digits, `_` and `-`.
    Marker,
    /// An HTTP token (RFC 9110 `tchar`s), as `charset=` in a Content-Type header needs.
    Token,
    /// At least one `host:port` (a list, or a string split on whitespace).
    Addresses,
    /// Origins for CORS: `*`, `null` or `scheme://host[:port]` (a list, a string split on
    /// whitespace, or undef for none).
    Origins,
    /// WORKERS: a whole number, 1 or more, or `auto`.
    Workers,
    /// CLUSTER_REDIS: '' (off), `host:port`, `unix:/path` or a `redis://` URL.
    Redis,
}

/// Every known key with a rule, in the order of the default file.
const RULES: &[(&str, Kind)] = &[
    ("SU_USER", Kind::Text),
    ("WAIT_TIMEOUT", Kind::Seconds),
    ("WAIT_MAXLEN", Kind::Count { min: 1 }),
    ("WAIT_ADDR", Kind::Addresses),
    ("IN_TIMEOUT", Kind::Seconds),
    ("IN_MAXLEN", Kind::Count { min: 1 }),
    ("IN_ADDR", Kind::Addresses),
    ("EVENT_CHAIN_LEN", Kind::Count { min: 0 }),
    ("OFFLINE_TIMEOUT", Kind::Seconds),
    ("MAX_DATA_FOR_ID", Kind::Count { min: 1 }),
    ("CLEAN_ID_AFTER", Kind::Seconds),
    ("CHARSET", Kind::Token),
    ("USERS_FILE", Kind::NonEmptyText),
    ("IFRAME_FILE", Kind::NonEmptyText),
    ("IFRAME_ID", Kind::NonEmptyText),
    ("SCRIPT_FILE", Kind::NonEmptyText),
    ("SCRIPT_ID", Kind::NonEmptyText),
    ("IDENTIFIER", Kind::Marker),
    ("JS_MAX_BOUNCES", Kind::Count { min: 0 }),
    ("JS_WAIT_RECONNECT_DELAY", Kind::NonNegative),
    ("JS_WAIT_URI", Kind::Text),
    ("JS_DEBUG", Kind::Flag),
    ("VERBOSITY", Kind::NonNegative),
    ("MAX_MEM_MB", Kind::NonNegative),
    ("ALLOWED_ORIGINS", Kind::Origins),
    ("IFRAME_ORIGIN_AGENT_CLUSTER", Kind::Flag),
    ("STREAM_PING", Kind::NonNegative),
    ("COALESCE_MS", Kind::Millis { max: 10_000 }),
    ("WORKERS", Kind::Workers),
    ("CLUSTER_REDIS", Kind::Redis),
    ("CLUSTER_PREFIX", Kind::Marker),
    ("CLUSTER_MAXLEN", Kind::Count { min: 1 }),
];

/// Checks every key that has a rule; the first misfit is the error.
pub fn check(values: &ConfigMap, origins: &Origins) -> Result<(), ConfigError> {
    for &(key, kind) in RULES {
        let value = match values.get(key) {
            Some(v) => v,
            // A missing VERBOSITY means "most verbose" (spec 9.3); a key the files never
            // set is checked as undef.
            None if key == "VERBOSITY" => continue,
            None => &Value::Undef,
        };
        if key == "VERBOSITY" && *value == Value::Undef {
            continue;
        }
        if let Err(expected) = fits(kind, value) {
            return Err(ConfigError::Invalid {
                key,
                why: format!("{} given, expected {expected}", show(value)),
                at: origins
                    .get(key)
                    .map(|(file, line)| format!("{file}:{line}")),
            });
        }
    }
    Ok(())
}

/// Whether `value` fits `kind`; the error says what was expected.
fn fits(kind: Kind, value: &Value) -> Result<(), String> {
    match kind {
        Kind::Seconds => number(
            value,
            "a number of seconds, 0 or more (0: none), such as 60",
        )
        .map(|_| ()),
        Kind::NonNegative => number(value, "a number, 0 or more").map(|_| ()),
        Kind::Count { min } => {
            let expected = format!("a whole number, {min} or more");
            let n = number(value, &expected)?;
            // Exact for every count a config can sensibly hold (below 2^53).
            if n.fract() != 0.0 || n < min as f64 {
                return Err(expected);
            }
            Ok(())
        }
        Kind::Millis { max } => {
            let expected = format!("a whole number of milliseconds, 0 to {max} (0: off)");
            let n = number(value, &expected)?;
            if n.fract() != 0.0 || n > max as f64 {
                return Err(expected);
            }
            Ok(())
        }
        Kind::Workers => {
            let expected = "a whole number, 1 or more, or 'auto'";
            if matches!(value, Value::Str(s) if s == "auto") {
                return Ok(());
            }
            let n = number(value, expected)?;
            if n.fract() != 0.0 || !(1.0..=4096.0).contains(&n) {
                return Err(expected.into());
            }
            Ok(())
        }
        Kind::Redis => {
            let s = scalar(value, "a string")?;
            crate::cluster::addr::parse(&s)
                .map(|_| ())
                .map_err(|e| format!("a Redis address ({e})"))
        }
        Kind::Flag => scalar(value, "0 or 1").map(|_| ()),
        Kind::Text => scalar(value, "a string").map(|_| ()),
        Kind::NonEmptyText => match scalar(value, "a non-empty string")? {
            s if s.is_empty() => Err("a non-empty string".into()),
            _ => Ok(()),
        },
        Kind::Marker => {
            let expected = "a name made of letters, digits, '_' and '-', such as identifier";
            let s = scalar(value, expected)?;
            let good = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
            if s.is_empty() || !s.bytes().all(good) {
                return Err(expected.into());
            }
            Ok(())
        }
        Kind::Token => {
            let expected = "a charset name (an HTTP token: letters, digits and !#$%&'*+-.^_`|~), such as utf-8";
            let s = scalar(value, expected)?;
            if s.is_empty() || !s.bytes().all(is_tchar) {
                return Err(expected.into());
            }
            Ok(())
        }
        Kind::Addresses => {
            let expected = "a list of host:port or unix:/absolute/path addresses, such as \
                            [ '0.0.0.0:8088' ] or [ 'unix:/run/realplexor/wait.sock' ]";
            let items = list(value, expected)?;
            if items.is_empty() || !items.iter().all(|a| is_address(a)) {
                return Err(expected.into());
            }
            Ok(())
        }
        Kind::Origins => {
            let expected = "a list of origins such as [ 'https://www.example.com' ], or [ '*' ]";
            if *value == Value::Undef {
                return Ok(());
            }
            let items = list(value, expected)?;
            if !items.iter().all(|o| is_origin(o)) {
                return Err(expected.into());
            }
            Ok(())
        }
    }
}

/// A finite number: Int, Num, or a string that is wholly a number (as Perl's
/// looks_like_number); undef, lists, code and other strings are refused.
fn number(value: &Value, expected: &str) -> Result<f64, String> {
    match value.looks_like_number() {
        Some(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(expected.into()),
    }
}

/// A scalar's string (undef reads as empty); lists and code are refused.
fn scalar(value: &Value, expected: &str) -> Result<String, String> {
    match value {
        Value::List(_) | Value::Code(_) => Err(expected.into()),
        v => Ok(v.to_perl_string()),
    }
}

/// A list of scalars, or one string split on whitespace (the C++ port's joined lists).
fn list(value: &Value, expected: &str) -> Result<Vec<String>, String> {
    match value {
        Value::List(items) => items
            .iter()
            .map(|i| match i {
                Value::Str(s) => Ok(s.clone()),
                _ => Err(expected.to_string()),
            })
            .collect(),
        Value::Str(s) => Ok(s.split_whitespace().map(str::to_owned).collect()),
        _ => Err(expected.into()),
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `host:port` with a port of 0-65535 after the last ':' and a host before it.
fn is_address(a: &str) -> bool {
    if let Some(path) = a.strip_prefix(crate::net::UNIX_PREFIX) {
        return is_socket_path(path);
    }
    match a.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && a.bytes().all(|b| b.is_ascii_graphic())
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

/// The path of a `unix:` listen address: absolute, naming a file (no trailing `/`), free
/// of control characters and whitespace (a joined list is split on it), and short enough
/// for `sun_path` (108 bytes with its NUL).
fn is_socket_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.ends_with('/')
        && p.len() < 108
        && !p.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// `*`, `null`, or `scheme://host[:port]` in visible ASCII without a path: what a browser
/// sends in `Origin` and what may be echoed in `Access-Control-Allow-Origin`.
fn is_origin(o: &str) -> bool {
    if o == "*" || o == "null" {
        return true;
    }
    let visible = o.bytes().all(|b| b.is_ascii_graphic() && b != b',');
    match o.split_once("://") {
        Some((scheme, rest)) => {
            visible
                && !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !rest.is_empty()
                && !rest.contains('/')
        }
        None => false,
    }
}

/// A value as an error shows it: strings quoted with control characters escaped (a CR/LF
/// must not reach the log), lists in brackets, long values shortened.
fn show(value: &Value) -> String {
    let text = match value {
        Value::Undef => "undef".to_string(),
        Value::Int(_) | Value::Num(_) => value.to_perl_string(),
        Value::Str(s) => format!("{s:?}"),
        Value::List(items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        Value::Code(_) => "sub {...}".to_string(),
    };
    const MAX: usize = 60;
    if text.chars().count() > MAX {
        format!("{}...", text.chars().take(MAX).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.to_string())
    }

    /// Issue 18 #7 and #15: each of these was accepted and converted in silence.
    #[test]
    fn wrong_types_and_ranges_are_refused() {
        let list = |v: &[&str]| Value::List(v.iter().map(|x| s(x)).collect());
        let bad: &[(&str, Value)] = &[
            ("WAIT_TIMEOUT", s("1 minute")),
            ("WAIT_TIMEOUT", s("abc")),
            ("WAIT_TIMEOUT", Value::Undef),
            (
                "WAIT_TIMEOUT",
                Value::List(vec![Value::Int(1), Value::Int(2)]),
            ),
            ("WAIT_TIMEOUT", Value::Int(-1)),
            ("COALESCE_MS", Value::Num(0.5)),
            ("COALESCE_MS", Value::Int(10_001)),
            ("COALESCE_MS", s("100ms")),
            ("WAIT_TIMEOUT", Value::Num(f64::INFINITY)),
            ("MAX_DATA_FOR_ID", Value::Int(0)),
            ("MAX_DATA_FOR_ID", Value::Num(2.5)),
            ("IN_MAXLEN", Value::Int(0)),
            ("WAIT_MAXLEN", s("")),
            ("VERBOSITY", s("loud")),
            ("CHARSET", s("utf-8\r\nSet-Cookie: x=1")),
            ("CHARSET", s("utf 8")),
            ("CHARSET", s("")),
            ("IDENTIFIER", s("")),
            ("IDENTIFIER", s("id=x")),
            ("USERS_FILE", s("")),
            ("IFRAME_FILE", list(&["a"])),
            ("WAIT_ADDR", list(&[])),
            ("WAIT_ADDR", list(&["8088"])),
            ("IN_ADDR", list(&["127.0.0.1:99999"])),
            ("WAIT_ADDR", list(&["unix:wait.sock"])),
            ("WAIT_ADDR", list(&["unix:/run/"])),
            ("WAIT_ADDR", list(&["unix:"])),
            ("WAIT_ADDR", list(&["unix:/run/a\0b"])),
            (
                "WAIT_ADDR",
                Value::List(vec![s(&format!("unix:/{}", "x".repeat(107)))]),
            ),
            ("ALLOWED_ORIGINS", list(&["https://a\r\nX: y"])),
            ("ALLOWED_ORIGINS", list(&["https://a/"])),
            ("ALLOWED_ORIGINS", list(&["a.example.com"])),
            ("SU_USER", list(&["nobody"])),
            ("IFRAME_ORIGIN_AGENT_CLUSTER", Value::Code("sub {}".into())),
        ];
        for (key, value) in bad {
            let rule = RULES.iter().find(|(k, _)| k == key).map(|(_, r)| *r);
            let got = rule.map(|r| fits(r, value));
            assert!(
                matches!(got, Some(Err(_))),
                "{key} = {value:?} must be refused"
            );
        }
    }

    #[test]
    fn what_configs_use_is_accepted() {
        let ok: &[(&str, Value)] = &[
            ("WAIT_TIMEOUT", Value::Int(0)),
            ("WAIT_TIMEOUT", Value::Num(0.5)),
            ("WAIT_TIMEOUT", s("300")),
            ("WAIT_TIMEOUT", s(" 2 ")),
            ("MAX_DATA_FOR_ID", Value::Num(2000.0)),
            ("EVENT_CHAIN_LEN", Value::Int(0)),
            ("COALESCE_MS", Value::Int(0)),
            ("COALESCE_MS", s("10000")),
            ("MAX_MEM_MB", Value::Num(0.5)),
            ("CHARSET", s("windows-1251")),
            ("CHARSET", s("koi8-r")),
            ("SU_USER", s("")),
            ("SU_USER", Value::Undef),
            ("JS_DEBUG", s("")),
            ("WAIT_ADDR", s("0.0.0.0:80 1.2.3.4:80")),
            (
                "WAIT_ADDR",
                Value::List(vec![s("[::1]:0"), s("localhost:8088")]),
            ),
            (
                "WAIT_ADDR",
                Value::List(vec![s("unix:/run/realplexor/wait.sock"), s("0.0.0.0:8088")]),
            ),
            ("IN_ADDR", s("unix:/tmp/in.sock 127.0.0.1:10010")),
            ("ALLOWED_ORIGINS", Value::List(vec![])),
            ("ALLOWED_ORIGINS", Value::Undef),
            (
                "ALLOWED_ORIGINS",
                Value::List(vec![s("*"), s("null"), s("http://127.0.0.1:8080")]),
            ),
            ("IDENTIFIER", s("identifier")),
        ];
        for (key, value) in ok {
            let rule = RULES.iter().find(|(k, _)| k == key).map(|(_, r)| *r);
            let got = rule.map(|r| fits(r, value));
            assert_eq!(got, Some(Ok(())), "{key} = {value:?}");
        }
    }

    #[test]
    fn errors_name_the_place_the_key_and_what_was_expected() {
        let mut values = ConfigMap::new();
        let defaults =
            crate::config::perl::eval_file(super::super::DEFAULT_CONF, "/d", &mut values);
        assert_eq!(defaults, Ok(()));
        assert_eq!(
            check(&values, &Origins::new()).err().map(|e| e.to_string()),
            None
        );
        values.insert("CHARSET".into(), s("utf-8\r\nSet-Cookie: x=1"));
        let mut origins = Origins::new();
        origins.insert("CHARSET".into(), ("/etc/site.conf".into(), 7));
        let e = check(&values, &origins).err().map(|e| e.to_string());
        let e = e.unwrap_or_default();
        assert!(e.starts_with("/etc/site.conf:7: invalid CHARSET: "), "{e}");
        assert!(e.contains(r#""utf-8\r\nSet-Cookie: x=1" given"#), "{e}");
        assert!(e.contains("expected a charset name"), "{e}");
        assert!(!e.contains('\r') && !e.contains('\n'), "{e:?}");
    }
}
