//! The `CLUSTER_REDIS` setting: which Redis server cluster mode talks to, and how.
//!
//! Job: parse the setting's text once, at config load, into a typed `Target`, with an
//! error that names what is wrong; nothing here connects or resolves names.
//!
//! Data shape (leading and trailing whitespace ignored):
//! - `''`: cluster mode off (`Ok(None)`);
//! - `host:port`, `[v6addr]:port`: TCP, db 0, no AUTH;
//! - `unix:/path/redis.sock` (or `unix:///path`): a Unix socket, db 0, no AUTH;
//! - `redis://[[user]:password@]host[:port][/db]`: TCP (port 6379 if left out), AUTH
//!   with `password` (and `user`, Redis 6 ACLs, when given), `SELECT db`. User and
//!   password are percent-decoded, so `%40` stands for `@` and `%3A` for `:`.
//!
//! `rediss://` (TLS), query strings and a user without a password are refused rather than
//! half-supported. `Target`'s `Display` and `Debug` never show the password, so it may be
//! logged. Uses: nothing internal.

use std::fmt;
use std::path::PathBuf;

/// Where the server listens.
#[derive(Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A host name or IP literal (IPv6 without brackets) and a port.
    Tcp { host: String, port: u16 },
    /// An absolute path of a Unix socket.
    Unix(PathBuf),
}

/// A parsed `CLUSTER_REDIS`.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub endpoint: Endpoint,
    /// ACL user for `AUTH user password`; only with a password.
    pub username: Option<Vec<u8>>,
    /// `AUTH [user] password` when set.
    pub password: Option<Vec<u8>>,
    /// `SELECT db` when not 0.
    pub db: u32,
}

/// Why a `CLUSTER_REDIS` value was refused; the text says what is wrong and what is
/// accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrError(pub String);

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CLUSTER_REDIS: {} (want '', 'host:port', 'unix:/path/redis.sock' or \
             'redis://[user:password@]host:port[/db]')",
            self.0
        )
    }
}

impl std::error::Error for AddrError {}

fn bad<T>(msg: impl Into<String>) -> Result<T, AddrError> {
    Err(AddrError(msg.into()))
}

/// Parses a `CLUSTER_REDIS` value; `Ok(None)` when empty (cluster mode off).
pub fn parse(value: &str) -> Result<Option<Target>, AddrError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if let Some(rest) = v.strip_prefix("unix:") {
        let path = match rest.strip_prefix("//") {
            Some(p) => p,
            None => rest,
        };
        if !path.starts_with('/') {
            return bad(format!("unix socket path '{path}' is not absolute"));
        }
        if path.len() < 2 || path.ends_with('/') {
            return bad(format!("unix socket path '{path}' names a directory"));
        }
        return Ok(Some(plain(Endpoint::Unix(PathBuf::from(path)))));
    }
    if let Some(rest) = v.strip_prefix("redis://") {
        return parse_url(rest).map(Some);
    }
    if v.starts_with("rediss://") {
        return bad("TLS (rediss://) is not supported");
    }
    if v.contains("://") {
        return bad(format!("unknown scheme in '{v}'"));
    }
    let (host, port) = host_port(v, None)?;
    Ok(Some(plain(Endpoint::Tcp { host, port })))
}

fn plain(endpoint: Endpoint) -> Target {
    Target {
        endpoint,
        username: None,
        password: None,
        db: 0,
    }
}

/// `[[user]:password@]host[:port][/db]` after `redis://`.
fn parse_url(rest: &str) -> Result<Target, AddrError> {
    if rest.contains('?') || rest.contains('#') {
        return bad("query strings and fragments are not supported in redis:// URLs");
    }
    // The last '@' ends the user info, so an unencoded '@' in a password still works.
    let (userinfo, hostpart) = match rest.rfind('@') {
        Some(at) => (
            rest.get(..at),
            rest.get(at.saturating_add(1)..).unwrap_or_default(),
        ),
        None => (None, rest),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(info) => match info.find(':') {
            Some(colon) => {
                let user = decode(info.get(..colon).unwrap_or_default(), "user name")?;
                let pass = decode(
                    info.get(colon.saturating_add(1)..).unwrap_or_default(),
                    "password",
                )?;
                if pass.is_empty() {
                    return bad("empty password in redis:// URL");
                }
                ((!user.is_empty()).then_some(user), Some(pass))
            }
            None => return bad("a redis:// user without ':password' (AUTH needs a password)"),
        },
    };
    let (hostport, db) = match hostpart.find('/') {
        Some(slash) => {
            let db = hostpart.get(slash.saturating_add(1)..).unwrap_or_default();
            (hostpart.get(..slash).unwrap_or_default(), parse_db(db)?)
        }
        None => (hostpart, 0),
    };
    let (host, port) = host_port(hostport, Some(6379))?;
    Ok(Target {
        endpoint: Endpoint::Tcp { host, port },
        username,
        password,
        db,
    })
}

fn parse_db(text: &str) -> Result<u32, AddrError> {
    if text.is_empty() {
        return Ok(0);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return bad(format!("database '{text}' is not a number"));
    }
    text.parse::<u32>()
        .or_else(|_| bad(format!("database '{text}' is out of range")))
}

/// `host:port` or `[v6]:port`; a missing `:port` takes `default` when there is one.
fn host_port(text: &str, default: Option<u16>) -> Result<(String, u16), AddrError> {
    let (host, port) = if let Some(after) = text.strip_prefix('[') {
        let close = match after.find(']') {
            Some(c) => c,
            None => return bad(format!("unclosed '[' in '{text}'")),
        };
        let host = after.get(..close).unwrap_or_default();
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return bad(format!("'{host}' is not an IPv6 address"));
        }
        let tail = after.get(close.saturating_add(1)..).unwrap_or_default();
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(p),
            None if tail.is_empty() => None,
            None => return bad(format!("unexpected '{tail}' after ']'")),
        };
        (host, port)
    } else {
        match text.rfind(':') {
            Some(c) if text.get(..c).is_some_and(|h| h.contains(':')) => {
                return bad(format!(
                    "IPv6 address '{text}' needs brackets: '[addr]:port'"
                ));
            }
            Some(c) => (
                text.get(..c).unwrap_or_default(),
                Some(text.get(c.saturating_add(1)..).unwrap_or_default()),
            ),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return bad(format!("no host in '{text}'"));
    }
    if let Some(b) = host
        .bytes()
        .find(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':')))
    {
        return bad(format!(
            "bad character '{}' in host '{host}'",
            char::from(b).escape_default()
        ));
    }
    let port = match (port, default) {
        (Some(p), _) => parse_port(p)?,
        (None, Some(d)) => d,
        (None, None) => return bad(format!("no port in '{text}'")),
    };
    Ok((host.to_string(), port))
}

fn parse_port(text: &str) -> Result<u16, AddrError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return bad(format!("port '{text}' is not a number"));
    }
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => bad(format!("port '{text}' is out of range (1-65535)")),
    }
}

/// Percent-decoding of URL user info.
fn decode(text: &str, what: &str) -> Result<Vec<u8>, AddrError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i.saturating_add(1)..i.saturating_add(3));
            let val = hex
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match val {
                Some(v) => out.push(v),
                None => return bad(format!("bad percent escape in the {what}")),
            }
            i = i.saturating_add(3);
        } else {
            out.push(b);
            i = i.saturating_add(1);
        }
    }
    Ok(out)
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `redis://user:***@host:port/db` style, never the password itself.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self.username.as_deref().map(String::from_utf8_lossy);
        match (&user, &self.password) {
            (Some(u), Some(_)) => write!(f, "{u}:***@")?,
            (None, Some(_)) => f.write_str(":***@")?,
            _ => {}
        }
        write!(f, "{}", self.endpoint)?;
        if self.db != 0 {
            write!(f, "/{}", self.db)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: host.into(),
            port,
        }
    }

    fn ok(v: &str) -> Target {
        match parse(v) {
            Ok(Some(t)) => t,
            other => panic!("{v:?}: {other:?}"),
        }
    }

    fn err(v: &str) -> String {
        match parse(v) {
            Err(e) => e.to_string(),
            other => panic!("{v:?}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn empty_is_off() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("  \t"), Ok(None));
    }

    #[test]
    fn host_and_port() {
        assert_eq!(ok("127.0.0.1:6379"), plain(tcp("127.0.0.1", 6379)));
        assert_eq!(
            ok(" redis.internal:7000 "),
            plain(tcp("redis.internal", 7000))
        );
        assert_eq!(ok("[::1]:6380"), plain(tcp("::1", 6380)));
        assert_eq!(ok("[::1]:6380").to_string(), "[::1]:6380");
    }

    #[test]
    fn unix_sockets() {
        let want = plain(Endpoint::Unix("/run/redis/redis.sock".into()));
        assert_eq!(ok("unix:/run/redis/redis.sock"), want);
        assert_eq!(ok("unix:///run/redis/redis.sock"), want);
        assert_eq!(want.to_string(), "unix:/run/redis/redis.sock");
        assert!(err("unix:redis.sock").contains("not absolute"));
        assert!(err("unix:").contains("not absolute"));
        assert!(err("unix:/").contains("directory"));
        assert!(err("unix:/run/").contains("directory"));
    }

    #[test]
    fn redis_urls() {
        assert_eq!(ok("redis://localhost"), plain(tcp("localhost", 6379)));
        assert_eq!(ok("redis://10.0.0.5:7001/"), plain(tcp("10.0.0.5", 7001)));
        let t = ok("redis://:s3cret@10.0.0.5:7001/2");
        assert_eq!(t.endpoint, tcp("10.0.0.5", 7001));
        assert_eq!(t.username, None);
        assert_eq!(t.password.as_deref(), Some(&b"s3cret"[..]));
        assert_eq!(t.db, 2);
        let t = ok("redis://alice:p%40ss%3Aw0rd@[::1]:6379/15");
        assert_eq!(t.endpoint, tcp("::1", 6379));
        assert_eq!(t.username.as_deref(), Some(&b"alice"[..]));
        assert_eq!(t.password.as_deref(), Some(&b"p@ss:w0rd"[..]));
        assert_eq!(t.db, 15);
        // An unencoded '@' in the password: the last '@' ends the user info.
        let t = ok("redis://bob:a@b@host:1");
        assert_eq!(t.password.as_deref(), Some(&b"a@b"[..]));
        assert_eq!(t.endpoint, tcp("host", 1));
    }

    #[test]
    fn never_shows_the_password() {
        let t = ok("redis://alice:topsecret@host:6379/3");
        assert_eq!(t.to_string(), "alice:***@host:6379/3");
        assert!(!format!("{t:?}").contains("topsecret"));
        assert_eq!(ok("redis://:topsecret@host:1").to_string(), ":***@host:1");
    }

    #[test]
    fn clear_errors() {
        let cases = [
            ("localhost", "no port"),
            ("localhost:", "port '' is not a number"),
            ("localhost:0", "out of range"),
            ("localhost:65536", "out of range"),
            ("localhost:-1", "not a number"),
            ("localhost:63a", "not a number"),
            (":6379", "no host"),
            ("::1:6379", "needs brackets"),
            ("[::1:6379", "unclosed"),
            ("[nothost]:6379", "not an IPv6 address"),
            ("[::1]x", "unexpected"),
            ("ho st:1", "bad character ' '"),
            ("host/x:1", "bad character '/'"),
            ("rediss://host:6379", "TLS"),
            ("http://host:80", "unknown scheme"),
            ("redis://host:6379/x", "database 'x' is not a number"),
            ("redis://host:6379/-1", "not a number"),
            ("redis://host:6379/99999999999", "out of range"),
            ("redis://host:6379/0/1", "not a number"),
            ("redis://host:6379?db=1", "query strings"),
            ("redis://alice@host:6379", "without ':password'"),
            ("redis://alice:@host:6379", "empty password"),
            ("redis://:p%4@host:1", "percent escape in the password"),
            ("redis://a%zz:p@host:1", "percent escape in the user name"),
            ("redis://:pw@", "no host"),
            ("redis://", "no host"),
        ];
        for (value, want) in cases {
            let e = err(value);
            assert!(e.contains(want), "{value:?}: {e}");
            assert!(e.starts_with("CLUSTER_REDIS: "), "{e}");
        }
        // Multi-byte text near the delimiters never splits a character.
        assert!(parse("é:1").is_err());
        assert!(parse("redis://é:é@é:1/é").is_err());
    }
}
