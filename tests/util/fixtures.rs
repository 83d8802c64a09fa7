//! The fixture confs (`tests/fixtures/`, mirroring `t/servertest/fixture/*.conf` of the
//! original) and the servers started on them.
//!
//! Data: conf texts and users files, embedded with `include_str!`.
//!
//! May use the sibling `server` module.

use super::server::Server;

/// Fixture confs, mirroring `t/servertest/fixture/*.conf` of the original.
pub mod fixture {
    pub const SMALL_OFFLINE_TIMEOUT: &str = include_str!("../fixtures/small_offline_timeout.conf");
    pub const SMALL_WAIT_TIMEOUT: &str = include_str!("../fixtures/small_wait_timeout.conf");
    pub const SMALL_QUEUE_SZ: &str = include_str!("../fixtures/small_queue_sz.conf");
    /// CLEAN_ID_AFTER = 1 and WAIT_TIMEOUT = 1.
    pub const SMALL_CLEANUP_TIMEOUT: &str = include_str!("../fixtures/small_cleanup_timeout.conf");
    pub const LARGE_QUEUE_SZ: &str = include_str!("../fixtures/large_queue_sz.conf");
    pub const SMALL_IN_MAXLEN: &str = include_str!("../fixtures/small_in_maxlen.conf");
    pub const IPV6_WAIT_ADDR: &str = include_str!("../fixtures/ipv6_wait_addr.conf");
    pub const TWO_WAIT_ADDRS: &str = include_str!("../fixtures/two_wait_addrs.conf");
    pub const IFRAME_STUB: &str = include_str!("../fixtures/iframe_stub.conf");
    /// The original's fixture verbatim: `dirname(abs_path(__FILE__)) . "/iframe_stub.html"`.
    pub const IFRAME_STUB_FILE_IDIOM: &str =
        include_str!("../fixtures/iframe_stub_file_idiom.conf");
    pub const IFRAME_STUB_HTML: &str = include_str!("../fixtures/iframe_stub.html");
    pub const SCRIPT_STUB: &str = include_str!("../fixtures/script_stub.conf");
    pub const SCRIPT_STUB_JS: &str = include_str!("../fixtures/script_stub.js");
}

/// Fixtures of the command, presence and auth tests (`t/servertest/fixture/*.conf`).
pub mod fixture_cmd {
    /// EVENT_CHAIN_LEN = 3.
    pub const SMALL_CHAIN_LEN: &str = include_str!("../fixtures/small_chain_len.conf");
    /// USERS_FILE = `non_anonymous.htpasswd` beside the conf, in the original's idiom.
    pub const NON_ANONYMOUS: &str = include_str!("../fixtures/non_anonymous.conf");
    /// The original's users file: only `user:32qjML0Qsbo8o` (DES of `password`), no guest.
    pub const NON_ANONYMOUS_HTPASSWD: &str = include_str!("../fixtures/non_anonymous.htpasswd");
}

/// A server on the `non_anonymous` fixture (spec 12.0), with `extra` conf lines appended.
pub fn start_non_anonymous(extra: &str) -> Server {
    Server::start_with_files(
        &format!("{extra}\n{}", fixture_cmd::NON_ANONYMOUS),
        &[(
            "non_anonymous.htpasswd",
            fixture_cmd::NON_ANONYMOUS_HTPASSWD,
        )],
    )
}

/// A server whose USERS_FILE (`users.htpasswd` beside the conf) holds `users`.
pub fn start_with_users(extra_conf: &str, users: &str) -> Server {
    Server::start_with_files(
        &format!("$CONFIG{{USERS_FILE}} = \"@DIR@/users.htpasswd\";\n{extra_conf}"),
        &[("users.htpasswd", users)],
    )
}
