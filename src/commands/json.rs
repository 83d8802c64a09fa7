//! The ONLINE, WATCH and STATS answers as JSON, for the HTTP API (`GET /online`, `/watch`,
//! `/stats.json`): the same `Reply` pieces `answer` took from storage (so the same rules,
//! prefixes and login restrictions), written in another syntax.
//!
//! Shapes:
//! * ONLINE: `["id", ...]`, or with counters `{"id": count, ...}`;
//! * WATCH: `[{"pos": N, "event": "online", "id": "..."}, ...]` (without a usable cursor, the
//!   text command's `FAKE` line: `[{"pos": N, "event": "FAKE", "id": "FAKE"}]`);
//! * STATS: `{"data_to_send": {"id": [{"cursor": "..", "bytes": n, "limiters": [..]}]},
//!   "connected_fhs": {"id": ["0x.."]}, "online_timers": ["id"], "cleanup_timers": ["id"],
//!   "pairs_by_fhs": {"0x..": [{"cursor": "..", "id": ".."}]}}`.
//!
//! Uses: answer (pieces), serde_json (string escaping).

use super::answer::{token, Piece, Reply};

fn str_(out: &mut Vec<u8>, s: &str) {
    // Serialising a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn sep(out: &mut Vec<u8>, first: &mut bool) {
    if !*first {
        out.extend_from_slice(b", ");
    }
    *first = false;
}

/// ONLINE as a list of ids, or an object of id -> count with `counters`.
pub fn online(reply: &Reply, counters: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * reply.pieces.len() + 2);
    out.push(if counters { b'{' } else { b'[' });
    let mut first = true;
    for p in &reply.pieces {
        if let Piece::Online(id, n) = p {
            sep(&mut out, &mut first);
            str_(&mut out, id);
            if counters {
                out.extend_from_slice(format!(": {n}").as_bytes());
            }
        }
    }
    out.push(if counters { b'}' } else { b']' });
    out
}

fn event(out: &mut Vec<u8>, pos: u64, kind: &str, id: &str) {
    out.extend_from_slice(format!("{{\"pos\": {pos}, \"event\": ").as_bytes());
    str_(out, kind);
    out.extend_from_slice(b", \"id\": ");
    str_(out, id);
    out.push(b'}');
}

/// WATCH as a list of events.
pub fn watch(reply: &Reply) -> Vec<u8> {
    let mut out = b"[".to_vec();
    let mut first = true;
    for p in &reply.pieces {
        match p {
            Piece::Event(kind, pos, id) => {
                sep(&mut out, &mut first);
                event(&mut out, *pos, kind, id);
            }
            Piece::Fake(pos) => {
                sep(&mut out, &mut first);
                event(&mut out, *pos, "FAKE", "FAKE");
            }
            _ => {}
        }
    }
    out.push(b']');
    out
}

/// STATS as an object of its five sections.
pub fn stats(reply: &Reply) -> Vec<u8> {
    let mut out = b"{".to_vec();
    // The closing bracket of the open section, and whether it has an item yet.
    let mut close: Option<u8> = None;
    let mut first = true;
    for p in &reply.pieces {
        match p {
            Piece::Static(header) => {
                let name = header.trim().trim_start_matches('[').trim_end_matches(']');
                if let Some(c) = close.take() {
                    out.push(c);
                    out.extend_from_slice(b", ");
                }
                str_(&mut out, name);
                let list = name.ends_with("_timers");
                out.extend_from_slice(if list { b": [" } else { b": {" });
                close = Some(if list { b']' } else { b'}' });
                first = true;
            }
            Piece::Queue(id, items) => {
                sep(&mut out, &mut first);
                str_(&mut out, id);
                out.extend_from_slice(b": [");
                for (i, (cursor, msg)) in items.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    out.extend_from_slice(b"{\"cursor\": ");
                    str_(&mut out, &cursor.to_string());
                    out.extend_from_slice(
                        format!(", \"bytes\": {}, \"limiters\": [", msg.data.len()).as_bytes(),
                    );
                    for (j, l) in msg.limiters.iter().enumerate() {
                        if j > 0 {
                            out.extend_from_slice(b", ");
                        }
                        str_(&mut out, l);
                    }
                    out.extend_from_slice(b"]}");
                }
                out.push(b']');
            }
            Piece::Waiters(id, conns) => {
                sep(&mut out, &mut first);
                str_(&mut out, id);
                out.extend_from_slice(b": [");
                for (i, c) in conns.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    str_(&mut out, &format!("0x{:x}", token(*c)));
                }
                out.push(b']');
            }
            Piece::Assigned(id) => {
                sep(&mut out, &mut first);
                str_(&mut out, id);
            }
            Piece::Pairs(conn, pairs) => {
                sep(&mut out, &mut first);
                str_(&mut out, &format!("0x{:x}", token(*conn)));
                out.extend_from_slice(b": [");
                for (i, (cursor, id)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    out.extend_from_slice(b"{\"cursor\": ");
                    str_(&mut out, &cursor.to_string());
                    out.extend_from_slice(b", \"id\": ");
                    str_(&mut out, id);
                    out.push(b'}');
                }
                out.push(b']');
            }
            Piece::Online(..) | Piece::Fake(_) | Piece::Event(..) => {}
        }
    }
    if let Some(c) = close {
        out.push(c);
    }
    out.push(b'}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{answer, Answer, Command, Kind};
    use crate::storage::Storage;

    fn reply(kind: Kind, arg: &str, storage: &Storage) -> Reply {
        let cmd = Command {
            kind,
            arg: Some(arg.into()),
        };
        match answer(&cmd, storage, None) {
            Answer::Text { reply, .. } => reply,
            Answer::Nothing => panic!("no answer"),
        }
    }

    #[test]
    fn shapes_parse_as_json() {
        let s = Storage::new();
        let st = stats(&reply(Kind::Stats, "", &s));
        let v: serde_json::Value = serde_json::from_slice(&st).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"data_to_send": {}, "connected_fhs": {}, "online_timers": [],
                "cleanup_timers": [], "pairs_by_fhs": {}})
        );
        assert_eq!(online(&reply(Kind::Online, "", &s), true), b"{}");
        assert_eq!(online(&reply(Kind::Online, "", &s), false), b"[]");
        let fake = format!(
            "[{{\"pos\": {}, \"event\": \"FAKE\", \"id\": \"FAKE\"}}]",
            s.events().last_pos()
        );
        assert_eq!(watch(&reply(Kind::Watch, "", &s)), fake.as_bytes());
        assert_eq!(watch(&reply(Kind::Watch, "0.0", &s)), b"[]");
    }
}
