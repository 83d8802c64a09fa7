//! Ports of the PHP API tests `api/php/t/*.phpt` (spec 12.2), numbered as there, driven by
//! `Php`: a model of `Dklab_Realplexor` (spec 11.2) that sends the PHP client's exact wire
//! bytes (`POST / HTTP/1.1`, `Host`, `Content-Length`, `X-Realplexor: identifier=...`, then
//! shutdown(Write) and read to EOF) and parses the reply the way it does (status line,
//! matching Content-Length), returning what the PHP method returns or its exception text.
//!
//! 530_phpapi_errors is not ported: its three errors are raised by the client alone
//! (a closed port, id and cursor validation), without a server.

use crate::util::*;

/// One WATCH event as `cmdWatch` returns it: `['event' => .., 'pos' => .., 'id' => ..]`.
#[derive(Debug, PartialEq, Eq)]
struct Event {
    event: String,
    pos: String,
    id: String,
}

fn ev(event: &str, pos: &str, id: &str) -> Event {
    Event {
        event: event.into(),
        pos: pos.into(),
        id: id.into(),
    }
}

/// `new Dklab_Realplexor("127.0.0.1", <port>, $namespace)` with `logon()`.
struct Php<'a> {
    server: &'a Server,
    namespace: String,
    login: Option<(String, String)>,
}

impl<'a> Php<'a> {
    fn new(server: &'a Server, namespace: &str) -> Php<'a> {
        Php {
            server,
            namespace: namespace.into(),
            login: None,
        }
    }

    /// `logon()`: stores the credentials and prefixes the namespace with `login_`.
    fn logon(&mut self, login: &str, password: &str) {
        self.login = Some((login.into(), password.into()));
        self.namespace = format!("{login}_{}", self.namespace);
    }

    /// `_send($identifier, $body)`: the request bytes and the reply checks of the client.
    fn request(&self, identifier: &str, body: &str) -> Result<String, String> {
        let creds = self
            .login
            .as_ref()
            .map(|(l, p)| format!("{l}:{p}@"))
            .unwrap_or_default();
        let data = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\
             X-Realplexor: identifier={creds}{identifier}\r\n\r\n{body}",
            body.len()
        );
        let result = show(&self.server.push(data.as_bytes()));
        if result.is_empty() {
            return Ok(result);
        }
        let (headers, body) = split_blank_line(&result);
        let Some(status) = http_status(headers) else {
            return Err(format!("Non-HTTP response received:\n{result}"));
        };
        let code: String = status.chars().take_while(char::is_ascii_digit).collect();
        if code.parse::<u32>() != Ok(200) {
            return Err(format!("Request failed: {status}\n{body}"));
        }
        let Some(need) = content_length(headers) else {
            return Err(format!(
                "No Content-Length header in response headers:\n{headers}"
            ));
        };
        if need != body.len() {
            return Err(format!(
                "Response length ({}) is different than specified in Content-Length header ({need}): possibly broken response\n",
                body.len()
            ));
        }
        Ok(body.to_string())
    }

    /// `send($idsAndCursors, $data, $showOnlyForIds)`, `data` already JSON-encoded.
    fn send(&self, ids: &[(&str, Option<&str>)], json: &str, only_for: &[&str]) {
        let ns = &self.namespace;
        let mut pairs: Vec<String> = ids
            .iter()
            .map(|(id, cursor)| match cursor {
                Some(c) => format!("{c}:{ns}{id}"),
                None => format!("{ns}{id}"),
            })
            .collect();
        pairs.extend(only_for.iter().map(|id| format!("*{ns}{id}")));
        self.try_send(&pairs.join(","), json)
            .unwrap_or_else(|e| panic!("send threw: {e}"));
    }

    fn try_send(&self, identifier: &str, json: &str) -> Result<(), String> {
        let reply = self.request(identifier, json)?;
        assert_eq!(reply, "", "a push returns an empty string");
        Ok(())
    }

    /// Namespace handling of `cmdOnlineWithCounters` and `cmdWatch`.
    fn prefixes(&self, prefixes: &[&str]) -> Vec<String> {
        let mut p: Vec<String> = prefixes.iter().map(|s| s.to_string()).collect();
        if !self.namespace.is_empty() {
            if p.is_empty() {
                p.push(String::new());
            }
            for x in &mut p {
                *x = format!("{}{x}", self.namespace);
            }
        }
        p
    }

    /// `_sendCmd($cmd)`: `identifier=` plus the command and a LF as the body.
    fn send_cmd(&self, cmd: &str) -> Result<String, String> {
        self.request("", &format!("{cmd}\n"))
    }

    fn cmd_online_with_counters(&self, prefixes: &[&str]) -> Result<Vec<(String, String)>, String> {
        let p = self.prefixes(prefixes);
        let cmd = if p.is_empty() {
            "online".to_string()
        } else {
            format!("online {}", p.join(" "))
        };
        let resp = self.send_cmd(&cmd)?;
        let mut out: Vec<(String, String)> = Vec::new();
        if resp.trim().is_empty() {
            return Ok(out);
        }
        for line in resp.split('\n') {
            let mut parts = line.split(' ');
            let id = parts.next().unwrap_or_default();
            let counter = parts.next().unwrap_or_default();
            if id.is_empty() {
                continue;
            }
            let id = match id.strip_prefix(self.namespace.as_str()) {
                Some(rest) if !self.namespace.is_empty() => rest,
                _ => id,
            };
            out.retain(|(k, _)| k != id);
            out.push((id.to_string(), counter.to_string()));
        }
        Ok(out)
    }

    fn cmd_online(&self, prefixes: &[&str]) -> Vec<String> {
        self.cmd_online_with_counters(prefixes)
            .unwrap_or_else(|e| panic!("cmdOnline threw: {e}"))
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    fn cmd_watch(&self, from_pos: &str, prefixes: &[&str]) -> Result<Vec<Event>, String> {
        // PHP: a falsy position ("" or "0") becomes 0.
        let truthy = !(from_pos.is_empty() || from_pos == "0");
        let from_pos = if truthy { from_pos } else { "0" };
        if !from_pos.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(format!(
                "Position value must be numeric, \"{from_pos}\" given"
            ));
        }
        let p = self.prefixes(prefixes);
        let cmd = if p.is_empty() {
            format!("watch {from_pos}")
        } else {
            format!("watch {from_pos} {}", p.join(" "))
        };
        let resp = self.send_cmd(&cmd)?;
        let mut events = Vec::new();
        if resp.trim().is_empty() {
            return Ok(events);
        }
        for line in resp.trim().split('\n') {
            // ^(\w+)\s+([^:]+):(\S+)\s*$
            let parsed = line
                .split_once(char::is_whitespace)
                .and_then(|(event, rest)| {
                    let rest = rest.trim_start();
                    let (pos, id) = rest.split_once(':')?;
                    let id = id.trim_end();
                    let word = |s: &str| {
                        !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    };
                    (word(event)
                        && !pos.is_empty()
                        && !id.is_empty()
                        && !id.contains(char::is_whitespace))
                    .then_some((event, pos, id))
                });
            let Some((event, pos, id)) = parsed else {
                return Err(format!("Cannot parse the event: \"{line}\""));
            };
            let id = match id.strip_prefix(self.namespace.as_str()) {
                Some(rest) if truthy && !self.namespace.is_empty() => rest,
                _ => id,
            };
            events.push(ev(event, pos, id));
        }
        Ok(events)
    }
}

/// PHP `preg_split('/\r?\n\r?\n/s', $result, 2)`.
fn split_blank_line(s: &str) -> (&str, &str) {
    let b = s.as_bytes();
    for i in 0..b.len() {
        let mut j = i;
        if b.get(j) == Some(&b'\r') {
            j += 1;
        }
        if b.get(j) != Some(&b'\n') {
            continue;
        }
        j += 1;
        if b.get(j) == Some(&b'\r') {
            j += 1;
        }
        if b.get(j) == Some(&b'\n') {
            return (&s[..i], &s[j + 1..]);
        }
    }
    (s, "")
}

/// `^HTTP/[\d.]+\s+((\d+)[^\r\n]*)`: the code and reason.
fn http_status(headers: &str) -> Option<&str> {
    let rest = headers.strip_prefix("HTTP/")?;
    let v = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    if v == 0 {
        return None;
    }
    let rest = &rest[v..];
    let trimmed = rest.trim_start_matches([' ', '\t', '\r', '\n']);
    if trimmed.len() == rest.len() || !trimmed.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some(trimmed.split(['\r', '\n']).next().unwrap_or_default())
}

/// `/^Content-Length: \s* (\d+)/mix`.
fn content_length(headers: &str) -> Option<usize> {
    headers.split('\n').find_map(|line| {
        let name = line.get(..15)?;
        if !name.eq_ignore_ascii_case("Content-Length:") {
            return None;
        }
        let digits: String = line[15..]
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

fn wait(s: &Server, ids: &str) -> WaitClient {
    WaitClient::register(s, format!("identifier={ids}\naaa\n").as_bytes())
}

fn wait_and_disconnect(s: &Server, ids: &str, n: usize) {
    drop(wait(s, ids));
    s.wait_wait_closed(n);
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn php500_phpapi_json() {
    let s = Server::start("");
    let w = wait(&s, "abc");
    Php::new(&s, "").send(&[("abc", None), ("def", None)], r#""Test!""#, &[]);
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("abc", GEN)], r#""Test!""#)])
    );
    s.wait_wait_closed(1);
    assert_eq!(s.last_stats(), (0, 2, 0, 1, 2));
}

#[test]
fn php505_phpapi_json_ns() {
    let s = Server::start("");
    let w = wait(&s, "ns_abc");
    Php::new(&s, "ns_").send(&[("abc", None), ("def", None)], r#""Test!""#, &[]);
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("ns_abc", GEN)], r#""Test!""#)])
    );
    s.wait_wait_closed(1);
    assert_eq!(s.last_stats(), (0, 2, 0, 1, 2));
}

#[test]
fn php505_phpapi_json_ns_limited() {
    let s = Server::start("");
    let php = Php::new(&s, "ns_");
    php.send(
        &[("abc", Some("10")), ("def", Some("10"))],
        r#""public data""#,
        &[],
    );
    php.send(
        &[("abc", Some("11")), ("def", Some("11"))],
        r#""private data""#,
        &["myid1", "myid2"],
    );
    let w = wait(&s, "5:ns_abc");
    assert_eq!(
        w.read_body(),
        body(&[block(&[("ns_abc", "10")], r#""public data""#)])
    );
    let w = wait(&s, "5:ns_abc,666:ns_myid1");
    assert_eq!(
        w.read_body(),
        body(&[
            block(&[("ns_abc", "10")], r#""public data""#),
            block(&[("ns_abc", "11")], r#""private data""#)
        ])
    );
    s.wait_wait_closed(2);
    assert_eq!(s.last_stats(), (0, 2, 0, 2, 2));
}

#[test]
fn php520_phpapi_stamps() {
    let s = Server::start("");
    let w = wait(&s, "5:abc");
    Php::new(&s, "").send(
        &[("abc", Some("10")), ("def", Some("20")), ("ghi", None)],
        r#""Test!""#,
        &[],
    );
    assert_eq!(
        w.read_body(),
        body(&[block(&[("abc", "10")], r#""Test!""#)])
    );
    s.wait_wait_closed(1);
    assert_eq!(s.last_stats(), (0, 3, 0, 1, 3));
}

#[test]
fn php540_phpapi_online() {
    let s = Server::start("");
    let _w = wait(&s, "5:abc,10:def");
    assert_eq!(Php::new(&s, "").cmd_online(&[]), strings(&["abc", "def"]));
}

#[test]
fn php541_phpapi_online_with_counters() {
    let s = Server::start("");
    let _w = wait(&s, "5:abc,10:def,6:abc");
    assert_eq!(
        Php::new(&s, "").cmd_online_with_counters(&[]),
        Ok(vec![("abc".into(), "1".into()), ("def".into(), "1".into())])
    );
}

#[test]
fn php542_phpapi_online_empty() {
    let s = Server::start("");
    assert_eq!(Php::new(&s, "").cmd_online(&[]), Vec::<String>::new());
}

#[test]
fn php545_phpapi_online_prefix() {
    let s = Server::start("");
    let _w = wait(&s, "5:A_abc,10:def,20:B_ghi");
    assert_eq!(
        Php::new(&s, "").cmd_online(&["A_", "B_"]),
        strings(&["A_abc", "B_ghi"])
    );
}

#[test]
fn php545_phpapi_online_prefix_ns() {
    let s = Server::start("");
    let _w = wait(&s, "5:ns_A_abc,10:def,20:ns_B_ghi");
    assert_eq!(
        Php::new(&s, "ns_").cmd_online(&["A_", "B_"]),
        strings(&["A_abc", "B_ghi"])
    );
    s.wait_log(
        |m| m.ends_with("DEBUG: received aux command: ONLINE ns_A_ ns_B_"),
        LOG_TIMEOUT,
    );
    // Without prefixes the namespace alone is sent.
    assert_eq!(
        Php::new(&s, "ns_").cmd_online(&[]),
        strings(&["A_abc", "B_ghi"])
    );
}

#[test]
fn php547_phpapi_no_online_prefix() {
    let s = Server::start("");
    let _w = wait(&s, "5:abc");
    assert_eq!(Php::new(&s, "").cmd_online(&["xxx_"]), Vec::<String>::new());
}

#[test]
fn php560_phpapi_watch() {
    let s = Server::start("");
    wait_and_disconnect(&s, "abc", 1);
    wait_and_disconnect(&s, "def", 2);
    assert_eq!(
        Php::new(&s, "").cmd_watch("1", &[]),
        Ok(vec![ev("online", "11", "abc"), ev("online", "12", "def")])
    );
}

#[test]
fn php562_phpapi_watch_event_empty() {
    let s = Server::start("");
    assert_eq!(
        Php::new(&s, "").cmd_watch("0", &[]),
        Ok(vec![ev("FAKE", "10", "FAKE")])
    );
    assert_eq!(
        Php::new(&s, "").cmd_watch("", &[]),
        Ok(vec![ev("FAKE", "10", "FAKE")])
    );
}

#[test]
fn php562_phpapi_watch_ns() {
    let s = Server::start("");
    wait_and_disconnect(&s, "5:ns_abc", 1);
    wait_and_disconnect(&s, "6:def", 2);
    wait_and_disconnect(&s, "7:ns_ghi", 3);
    assert_eq!(
        Php::new(&s, "ns_").cmd_watch("1", &[]),
        Ok(vec![ev("online", "11", "abc"), ev("online", "13", "ghi")])
    );
    assert_eq!(s.last_stats(), (0, 0, 0, 3, 0));
}

#[test]
fn php564_phpapi_watch_idp_ns() {
    let s = Server::start("");
    wait_and_disconnect(&s, "5:ns_demo_abc", 1);
    wait_and_disconnect(&s, "6:def", 2);
    wait_and_disconnect(&s, "7:ns_ghi", 3);
    assert_eq!(
        Php::new(&s, "ns_").cmd_watch("1", &["demo_"]),
        Ok(vec![ev("online", "11", "demo_abc")])
    );
}

/// The demo cron pattern (`t/demo/cron_online_updater.php`): `cmdWatch(0)`, then follow
/// the FAKE position. With spec 13.1 #22 fixed, no event is missed.
#[test]
fn php_watch_from_fake_position_sees_every_event() {
    let s = Server::start("");
    let php = Php::new(&s, "");
    let fake = php.cmd_watch("0", &[]).expect("watch 0");
    assert_eq!(fake, vec![ev("FAKE", "10", "FAKE")]);
    let mut pos = fake[0].pos.clone();
    for (i, id) in ["abc", "def"].iter().enumerate() {
        wait_and_disconnect(&s, id, i + 1);
        let events = php.cmd_watch(&pos, &[]).expect("watch");
        assert_eq!(events, vec![ev("online", &format!("{}", 11 + i), id)]);
        pos = events[0].pos.clone();
    }
    assert_eq!(php.cmd_watch(&pos, &[]), Ok(vec![]));
    assert_eq!(
        php.cmd_watch("x", &[]),
        Err("Position value must be numeric, \"x\" given".into())
    );
}

#[test]
fn php600_phpapi_login() {
    let s = start_non_anonymous("");
    let w = wait(&s, "user_abc");
    let mut php = Php::new(&s, "");
    php.logon("user", "password");
    php.send(&[("abc", None), ("def", None)], r#""Test!""#, &[]);
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("user_abc", GEN)], r#""Test!""#)])
    );
    s.wait_wait_closed(1);
    assert_eq!(s.last_stats(), (0, 2, 0, 1, 2));
}

#[test]
fn php605_phpapi_login_invalid() {
    let s = start_non_anonymous("");
    let _w = wait(&s, "user_abc");
    let mut php = Php::new(&s, "");
    php.logon("unknown", "password");
    assert_eq!(
        php.try_send("unknown_abc,unknown_def", r#""Test!""#),
        Err("Request failed: 403 Access Deined\nunknown login: unknown\n".into())
    );
    s.wait_in_closed(1);
    assert_eq!(s.last_stats(), (1, 0, 1, 1, 0));
    // The same for commands, and for a wrong password.
    assert_eq!(
        php.cmd_online_with_counters(&[]),
        Err("Request failed: 403 Access Deined\nunknown login: unknown\n".into())
    );
    let mut php = Php::new(&s, "");
    php.logon("user", "wrong");
    assert_eq!(
        php.cmd_watch("1", &[]),
        Err("Request failed: 403 Access Deined\ninvalid password for login: user\n".into())
    );
}

#[test]
fn php610_phpapi_login_ns() {
    let s = start_non_anonymous("");
    let w = wait(&s, "user_ns_abc");
    let mut php = Php::new(&s, "ns_");
    php.logon("user", "password");
    php.send(&[("abc", None), ("def", None)], r#""Test!""#, &[]);
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("user_ns_abc", GEN)], r#""Test!""#)])
    );
}

#[test]
fn php620_phpapi_login_online() {
    let s = start_non_anonymous("");
    let _w = wait(&s, "5:user_abc,10:user_def");
    let mut php = Php::new(&s, "");
    php.logon("user", "password");
    assert_eq!(php.cmd_online(&[]), strings(&["abc", "def"]));
    s.wait_log(
        |m| m.ends_with("DEBUG: received aux command: ONLINE user_"),
        LOG_TIMEOUT,
    );
    assert_eq!(
        php.cmd_online_with_counters(&["a"]),
        Ok(vec![("abc".into(), "1".into())])
    );
    assert_eq!(
        php.cmd_watch("1", &[]),
        Ok(vec![ev("online", "11", "abc"), ev("online", "12", "def")])
    );
}

/// The client's reply parsing, on fixed inputs.
#[test]
fn php_reply_parsing_helpers() {
    assert_eq!(
        split_blank_line("HTTP/1.0 200 OK\r\nA: b\r\n\r\nx\r\n\r\ny"),
        ("HTTP/1.0 200 OK\r\nA: b", "x\r\n\r\ny")
    );
    assert_eq!(split_blank_line("abc"), ("abc", ""));
    assert_eq!(
        http_status("HTTP/1.0 403 Access Deined\r\nX: y"),
        Some("403 Access Deined")
    );
    assert_eq!(http_status("HTTP/1.0200 OK"), None);
    assert_eq!(http_status("ICY 200 OK"), None);
    assert_eq!(
        content_length("HTTP/1.0 200 OK\r\ncontent-length:  12\r\n"),
        Some(12)
    );
    assert_eq!(
        content_length("HTTP/1.0 200 OK\r\nX-Content-Length: 12"),
        None
    );
}
