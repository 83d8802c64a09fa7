//! Listen addresses that cannot all be bound: the same port twice on one address (or on
//! an address and the wildcard of its family), or the same `unix:` socket path twice,
//! within or across WAIT_ADDR and IN_ADDR.
//! Found at load time, so that a start or a reload says which address conflicts with
//! which instead of failing, or looping, on the second bind.
//!
//! Data: `(key, "host:port")` pairs in config order. Port 0 (any free port) never
//! conflicts; a host name is compared as text (the bind reports what this cannot see); a
//! socket path is compared with repeated `/` and `.` segments folded (symlinks and `..`
//! are left to the bind, which finds the first socket live).
//! Uses: the parent's `string_list` and `ConfigError` (for the one-line hook in `build`).

use super::perl::ConfigMap;
use super::{string_list, ConfigError};
use std::fmt;
use std::net::IpAddr;

/// Two entries that cannot both be bound: `later` conflicts with `earlier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub key: &'static str,
    pub addr: String,
    pub with_key: &'static str,
    pub with_addr: String,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} conflicts with {} {}",
            self.key, self.addr, self.with_key, self.with_addr
        )
    }
}

impl std::error::Error for Conflict {}

/// `check` on a map's WAIT_ADDR and IN_ADDR: the hook in `config::build`.
pub(super) fn check_values(values: &ConfigMap) -> Result<(), ConfigError> {
    check(
        &string_list(values, "WAIT_ADDR"),
        &string_list(values, "IN_ADDR"),
    )
    .map_err(ConfigError::Conflict)
}

/// The first conflict among `wait` (WAIT_ADDR) then `inn` (IN_ADDR), if any.
pub fn check(wait: &[String], inn: &[String]) -> Result<(), Conflict> {
    let all: Vec<(&'static str, &String)> = wait
        .iter()
        .map(|a| ("WAIT_ADDR", a))
        .chain(inn.iter().map(|a| ("IN_ADDR", a)))
        .collect();
    for (j, (key, addr)) in all.iter().enumerate() {
        for (with_key, with_addr) in &all[..j] {
            if clash(addr, with_addr) {
                return Err(Conflict {
                    key,
                    addr: (*addr).clone(),
                    with_key,
                    with_addr: (*with_addr).clone(),
                });
            }
        }
    }
    Ok(())
}

/// `host:port` or `[v6]:port` split into a lower-cased host without brackets and a port.
fn split(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.trim().rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.strip_prefix('[').unwrap_or(host);
    let host = host.strip_suffix(']').unwrap_or(host);
    Some((host.to_ascii_lowercase(), port))
}

/// `unix:/path` as its path with empty and `.` segments dropped.
fn socket_path(addr: &str) -> Option<String> {
    let path = addr.trim().strip_prefix(crate::net::UNIX_PREFIX)?;
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    Some(parts.join("/"))
}

fn clash(a: &str, b: &str) -> bool {
    match (socket_path(a), socket_path(b)) {
        (Some(pa), Some(pb)) => return pa == pb,
        (None, None) => {}
        _ => return false,
    }
    let (Some((ha, pa)), Some((hb, pb))) = (split(a), split(b)) else {
        return false;
    };
    if pa != pb || pa == 0 {
        return false;
    }
    match (ha.parse::<IpAddr>(), hb.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => {
            x == y || (x.is_ipv4() == y.is_ipv4() && (x.is_unspecified() || y.is_unspecified()))
        }
        _ => ha == hb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn in_addr_equal_to_wait_addr() {
        let e = check(&v(&["127.0.0.1:8088"]), &v(&["127.0.0.1:8088"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "IN_ADDR 127.0.0.1:8088 conflicts with WAIT_ADDR 127.0.0.1:8088"
        );
    }

    #[test]
    fn same_port_twice_in_one_list_and_on_the_wildcard() {
        let e = check(
            &v(&["0.0.0.0:8088", "1.2.3.4:8088"]),
            &v(&["127.0.0.1:10010"]),
        );
        assert_eq!(
            e.unwrap_err().to_string(),
            "WAIT_ADDR 1.2.3.4:8088 conflicts with WAIT_ADDR 0.0.0.0:8088"
        );
        let e = check(&v(&["[::1]:80"]), &v(&["[::]:80"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "IN_ADDR [::]:80 conflicts with WAIT_ADDR [::1]:80"
        );
        let e = check(&v(&["Localhost:80"]), &v(&["localhost:80"])).unwrap_err();
        assert_eq!(e.key, "IN_ADDR");
    }

    #[test]
    fn the_same_socket_path_twice() {
        let e = check(
            &v(&["unix:/run/rp/wait.sock", "127.0.0.1:8088"]),
            &v(&["unix:/run//rp/./wait.sock"]),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "IN_ADDR unix:/run//rp/./wait.sock conflicts with WAIT_ADDR unix:/run/rp/wait.sock"
        );
        let e = check(&v(&["unix:/a.sock", "unix:/a.sock"]), &v(&[])).unwrap_err();
        assert_eq!(e.key, "WAIT_ADDR");
    }

    #[test]
    fn what_can_be_bound_together() {
        for (wait, inn) in [
            (&["127.0.0.1:0"][..], &["127.0.0.1:0"][..]),
            (&["127.0.0.1:8088"], &["127.0.0.2:8088"]),
            (&["127.0.0.1:8088"], &["127.0.0.1:10010"]),
            (&["0.0.0.0:8088", "[::1]:8088"], &["127.0.0.1:10010"]),
            (&["localhost:8088"], &["example.com:8088"]),
            (&["garbage"], &["garbage"]),
            (&["unix:/run/rp/wait.sock"], &["unix:/run/rp/in.sock"]),
            (
                &["unix:/run/rp/wait.sock", "127.0.0.1:8088"],
                &["127.0.0.1:10010"],
            ),
        ] {
            assert_eq!(check(&v(wait), &v(inn)), Ok(()), "{wait:?} {inn:?}");
        }
    }
}
