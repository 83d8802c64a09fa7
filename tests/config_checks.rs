//! The config checks an operator meets in the first week (issue 18): what a config file
//! says is either applied or reported with `file:line`, never dropped or converted in
//! silence. One regression test per defect, named after it, against the real binary.
//!
//! Data shape: a server from `util::Server` (reloads) or a one-shot run of the binary that
//! must exit at the config check (`run_to_exit`: its exit status and stderr).
//! Uses: `util` (Server, WaitClient, log and body helpers) and `std`; helpers of its own
//! are defined here.

use crate::util::*;
use std::io::Write;

/// Appends a line to the server's override file.
fn append_conf(s: &Server, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.conf_path())
        .expect("open conf");
    writeln!(f, "{text}").expect("append conf");
}

/// The number of lines the server's override file has now (the line of the last one).
fn conf_lines(s: &Server) -> usize {
    std::fs::read_to_string(s.conf_path())
        .expect("read conf")
        .lines()
        .count()
}

// ----- #4: statements after `return 1;` -----

/// `echo '$CONFIG{MAX_DATA_FOR_ID} = 1;' >> site.conf` after its `return 1;`, then a
/// reload: Perl never runs that line, so it is not applied, but it is no longer silent.
#[test]
fn setting_appended_after_return_is_warned_and_not_applied() {
    let s = Server::start("return 1;");
    append_conf(&s, "$CONFIG{MAX_DATA_FOR_ID} = 1;");
    let line = conf_lines(&s);
    s.signal(libc::SIGHUP);
    let warning = s.wait_log(
        |l| l.contains("statement after 'return' skipped"),
        LOG_TIMEOUT,
    );
    assert!(
        warning.contains(&format!("test.conf:{line}: ")),
        "names file:line: {warning}"
    );
    // Not applied: the default MAX_DATA_FOR_ID (30) still keeps all three messages.
    for i in 0..3 {
        s.push_ids("q", &format!("\"m{i}\""));
    }
    let got = WaitClient::register(&s, b"identifier=0:q\n").read_body();
    assert_eq!(parse_ids(&got).len(), 3, "{got}");
}

/// Perl compiles the whole file: a syntax error after `return` fails the reload, and the
/// old settings stay.
#[test]
fn syntax_error_after_return_fails_the_reload() {
    let s = Server::start("return 1;");
    append_conf(&s, "$CONFIG{MAX_DATA_FOR_ID} = ;");
    let line = conf_lines(&s);
    s.signal(libc::SIGHUP);
    let error = s.wait_log(
        |l| l.contains("Error reloading config, continue with old settings"),
        LOG_TIMEOUT,
    );
    assert!(error.contains(&format!("test.conf:{line}: ")), "{error}");
}

// ----- #8: `%CONFIG = (...)` in the override file -----

/// The default file's style in an override file changes the keys it lists and keeps every
/// other setting (here the test's own addresses), with a warning naming file:line.
#[test]
fn hash_assignment_in_the_override_keeps_the_other_settings() {
    let s = Server::start("%CONFIG = ( MAX_DATA_FOR_ID => 1 );");
    let warning = s.wait_log(|l| l.contains("'%CONFIG = (...)'"), LOG_TIMEOUT);
    assert!(warning.contains("test.conf:"), "names the file: {warning}");
    assert!(warning.contains("$CONFIG{KEY} = value;"), "{warning}");
    // The listed key applies: one message is kept.
    s.push_ids("q", r#""a""#);
    s.push_ids("q", r#""b""#);
    let got = WaitClient::register(&s, b"identifier=0:q\n").read_body();
    assert_eq!(parse_ids(&got).len(), 1, "{got}");
}
