//! A client's text message as a command (the WAIT line over WebSocket).
//!
//! Data shape: one JSON object with exactly one key:
//! - `{"subscribe": {"<id>": "<cursor>" | null, ...}}`: listen to each id from after the
//!   cursor, or (null) from now, as `identifier=[CURSOR:]ID,...` does on long-polling;
//! - `{"unsubscribe": ["<id>", ...]}`: stop listening to these ids.
//!
//! Ids follow the identifier grammar of `ident` (`[A-Za-z0-9_]+`), cursors `\d+(\.\d+)?`
//! as a JSON string (a JSON number would lose digits), parsed by `Cursor::parse_client`.
//! At most `MAX_IDS` ids per command. Within a subscribe object a repeated id counts
//! once, the last cursor winning (as a later duplicate overrides on long-polling).
//! Anything else is a `CommandError` whose `code` (1008) and `message` go into the close
//! frame. Uses: cursor, websocket::frame (close codes), serde_json.

use super::frame::code;
use crate::cursor::Cursor;
use serde_json::Value;

/// The most ids one command may name.
pub const MAX_IDS: usize = 256;

/// One id to listen to and where from (`None`: from now).
pub type Subscription = (Box<str>, Option<Cursor>);

/// A parsed command; ids are checked word characters, in the order sent (subscribe: in
/// the order of serde_json's map, by id).
#[derive(Debug, Clone)]
pub enum Command {
    Subscribe(Vec<Subscription>),
    Unsubscribe(Vec<Box<str>>),
}

/// A message that is not a command. Close with `frame::close(e.code, &e.message, ..)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    /// Always 1008 (policy violation): the message is well-formed UTF-8 text (1007 is the
    /// assembler's) and text is the accepted type (1003 is for binary), but it is not a
    /// command this server knows.
    pub code: u16,
    /// What was wrong, short enough for a close frame's reason; never echoes client text.
    pub message: String,
}

fn fail(message: impl Into<String>) -> CommandError {
    CommandError {
        code: code::POLICY_VIOLATION,
        message: message.into(),
    }
}

/// `[A-Za-z0-9_]+`, the ids `ident::items` accepts.
pub fn is_id(s: &str) -> bool {
    crate::ident::is_id(s.as_bytes())
}

/// Parses one text message.
pub fn parse(text: &str) -> Result<Command, CommandError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| fail(format!("not JSON: {}", json_error(&e))))?;
    let Value::Object(top) = value else {
        return Err(fail("a command is a JSON object"));
    };
    let mut entries = top.into_iter();
    let (name, arg) = match (entries.next(), entries.next()) {
        (Some(one), None) => one,
        _ => return Err(fail("a command object has exactly one key")),
    };
    match name.as_str() {
        "subscribe" => subscribe(arg).map(Command::Subscribe),
        "unsubscribe" => unsubscribe(arg).map(Command::Unsubscribe),
        _ => Err(fail("unknown command (subscribe, unsubscribe)")),
    }
}

/// The kind of JSON error, without serde_json's text (which quotes the client's input).
fn json_error(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "syntax error",
        Category::Data => "data error",
        Category::Eof => "unexpected end",
    }
}

fn subscribe(arg: Value) -> Result<Vec<Subscription>, CommandError> {
    let Value::Object(map) = arg else {
        return Err(fail("subscribe takes an object of id: cursor or null"));
    };
    if map.len() > MAX_IDS {
        return Err(fail(format!("subscribe: more than {MAX_IDS} ids")));
    }
    let mut out = Vec::with_capacity(map.len());
    for (n, (id, cursor)) in map.into_iter().enumerate() {
        if !is_id(&id) {
            return Err(fail(format!(
                "subscribe: id #{} is not [A-Za-z0-9_]+",
                n + 1
            )));
        }
        let cursor = match cursor {
            Value::Null => None,
            Value::String(s) => match Cursor::parse_client(s.as_bytes()) {
                Some(c) => Some(c),
                None => {
                    return Err(fail(format!(
                        "subscribe: cursor #{} is not digits[.digits]",
                        n + 1
                    )))
                }
            },
            _ => {
                return Err(fail(format!(
                    "subscribe: cursor #{} must be a string or null",
                    n + 1
                )))
            }
        };
        out.push((id.into_boxed_str(), cursor));
    }
    Ok(out)
}

fn unsubscribe(arg: Value) -> Result<Vec<Box<str>>, CommandError> {
    let Value::Array(list) = arg else {
        return Err(fail("unsubscribe takes an array of ids"));
    };
    if list.len() > MAX_IDS {
        return Err(fail(format!("unsubscribe: more than {MAX_IDS} ids")));
    }
    let mut out = Vec::with_capacity(list.len());
    for (n, id) in list.into_iter().enumerate() {
        match id {
            Value::String(s) if is_id(&s) => out.push(s.into_boxed_str()),
            _ => {
                return Err(fail(format!(
                    "unsubscribe: id #{} is not a string of [A-Za-z0-9_]+",
                    n + 1
                )))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(text: &str) -> Vec<(String, Option<String>)> {
        match parse(text) {
            Ok(Command::Subscribe(v)) => v
                .into_iter()
                .map(|(id, c)| (id.into(), c.map(|c| c.to_string())))
                .collect(),
            other => panic!("{text}: {other:?}"),
        }
    }

    fn unsubs(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(Command::Unsubscribe(v)) => v.into_iter().map(String::from).collect(),
            other => panic!("{text}: {other:?}"),
        }
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Err(e) => {
                assert_eq!(e.code, 1008);
                assert!(e.message.len() <= 123, "{}", e.message);
                e.message
            }
            Ok(c) => panic!("{text:?} parsed as {c:?}"),
        }
    }

    #[test]
    fn subscribe_and_unsubscribe() {
        assert_eq!(
            subs(r#"{"subscribe": {"abc": "1234.5678", "Z_9": null, "x": "007"}}"#),
            vec![
                ("Z_9".into(), None),
                ("abc".into(), Some("1234.5678".into())),
                ("x".into(), Some("007".into())),
            ]
        );
        assert_eq!(subs(r#" {"subscribe":{}} "#), vec![]);
        // A repeated id: the last cursor wins.
        assert_eq!(
            subs(r#"{"subscribe": {"a": "1", "a": "2"}}"#),
            vec![("a".into(), Some("2".into()))]
        );
        assert_eq!(
            unsubs(r#"{"unsubscribe": ["a", "b_1", "a"]}"#),
            ["a", "b_1", "a"]
        );
        assert_eq!(unsubs(r#"{"unsubscribe": []}"#), Vec::<String>::new());
        // Long cursors keep every digit.
        let long = format!(
            r#"{{"subscribe": {{"a": "1{}.{}"}}}}"#,
            "0".repeat(40),
            "9".repeat(40)
        );
        assert_eq!(subs(&long)[0].1.as_ref().unwrap().len(), 82);
    }

    #[test]
    fn not_commands() {
        for bad in [
            "",
            " ",
            "\u{feff}{}",
            "null",
            "[]",
            "\"subscribe\"",
            "{}",
            r#"{"subscribe": {}, "unsubscribe": []}"#,
            r#"{"Subscribe": {}}"#,
            r#"{"ping": 1}"#,
            r#"{"subscribe": {}} x"#,
            r#"{"subscribe": {},}"#,
            r#"{"subscribe": ["a"]}"#,
            r#"{"subscribe": null}"#,
            r#"{"unsubscribe": {"a": null}}"#,
            r#"{"unsubscribe": "a"}"#,
        ] {
            err(bad);
        }
    }

    #[test]
    fn bad_ids_and_cursors() {
        for id in ["", "a b", "*a", "a,b", "é", "a-b", "a:b", "a\u{0}", "١٢"] {
            let j = serde_json::to_string(id).unwrap();
            assert!(err(&format!(r#"{{"subscribe": {{{j}: null}}}}"#)).contains("id #1"));
            assert!(err(&format!(r#"{{"unsubscribe": ["ok", {j}]}}"#)).contains("id #2"));
        }
        for c in [
            r#""""#,
            r#""1.""#,
            r#"".5""#,
            r#""-1""#,
            r#""1e5""#,
            r#""1.2.3""#,
            r#"" 1""#,
            r#""١""#,
            "5",
            "1.5",
            "true",
            "{}",
            "[]",
        ] {
            assert!(
                err(&format!(r#"{{"subscribe": {{"a": {c}}}}}"#)).contains("cursor #1"),
                "{c}"
            );
        }
        for x in ["1", "null", "[\"a\"]", "{}"] {
            err(&format!(r#"{{"unsubscribe": [{x}]}}"#));
        }
    }

    #[test]
    fn bounded_id_count() {
        let ids = |n: usize| {
            (0..n)
                .map(|i| format!("\"i{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        };
        let map = |n: usize| {
            (0..n)
                .map(|i| format!("\"i{i}\":null"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            unsubs(&format!(r#"{{"unsubscribe":[{}]}}"#, ids(MAX_IDS))).len(),
            MAX_IDS
        );
        assert_eq!(
            subs(&format!(r#"{{"subscribe":{{{}}}}}"#, map(MAX_IDS))).len(),
            MAX_IDS
        );
        assert!(err(&format!(r#"{{"unsubscribe":[{}]}}"#, ids(MAX_IDS + 1))).contains("more than"));
        assert!(err(&format!(r#"{{"subscribe":{{{}}}}}"#, map(MAX_IDS + 1))).contains("more than"));
    }

    #[test]
    fn hostile_json_never_panics() {
        // Deep nesting stops at serde_json's recursion limit, not the stack.
        for open in ["[", "{\"a\":", "{\"subscribe\":["] {
            let deep = open.repeat(100_000);
            err(&deep);
        }
        err(&format!(
            r#"{{"subscribe": {{"a": {}}}}}"#,
            "9".repeat(10_000)
        ));
        err(r#"{"subscribe": {"a": "\ud800"}}"#);
        err("{\"subscribe\": {\"a\": \"1\"}}\u{0}");
        let mut x = 0x5851_f42d_4c95_7f2du64;
        let base = br#"{"subscribe": {"abc": "12.5", "d": null}, "unsubscribe": ["q"]}"#;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut v = base.to_vec();
            for k in 0..3 {
                let at = ((x >> (k * 16)) as usize) % v.len();
                v[at] = b"{}[]\":,nul 0.\\a"[((x >> (k * 5 + 48)) % 15) as usize];
            }
            v.truncate((x >> 40) as usize % (v.len() + 1));
            if let Ok(s) = std::str::from_utf8(&v) {
                let _ = parse(s);
            }
        }
    }
}
