//! The config checks an operator meets in the first week (issue 18): what a config file
//! says is either applied or reported with `file:line`, never dropped or converted in
//! silence. One regression test per defect, named after it, against the real binary.
//!
//! Data shape: a server from `util::Server` (reloads) or a one-shot run of the binary that
//! must exit at the config check (`run_to_exit`: its exit status and stderr).
//! Uses: `util` (Server, WaitClient, log and body helpers) and `std`; helpers of its own
//! are defined here.

use crate::util::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Lines every conf of these tests starts with: loopback ephemeral ports, no privilege
/// drop, so that a server that wrongly starts disturbs nothing.
const BASE: &str = "$CONFIG{WAIT_ADDR} = [ '127.0.0.1:0' ];\n\
$CONFIG{IN_ADDR} = [ '127.0.0.1:0' ];\n\
$CONFIG{SU_USER} = '';\n";

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// A fresh empty directory for one test.
fn temp_dir(tag: &str) -> PathBuf {
    let n = RUNS.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("realplexor-cc-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

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

/// Runs the binary (the default supervisor mode) on `conf_path` and waits for it to exit;
/// a run still going after 10 s is killed and reported as `None`.
fn run_to_exit(conf_path: &Path) -> (Option<ExitStatus>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_realplexor"))
        .arg(conf_path)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn realplexor");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    (status, stderr)
}

/// Writes `BASE` + `extra` as an override file and runs the binary on it; asserts that it
/// stops at once with a non-zero status and returns (the conf's path, stderr).
fn startup_error(tag: &str, extra: &str) -> (String, String) {
    let dir = temp_dir(tag);
    let conf = dir.join("site.conf");
    std::fs::write(&conf, format!("{BASE}{extra}\n")).expect("write conf");
    let shown = std::fs::canonicalize(&conf).unwrap_or(conf.clone());
    let (status, stderr) = run_to_exit(&conf);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        status.is_some_and(|s| !s.success()),
        "{extra:?} must stop the server at startup, got {status:?}; stderr:\n{stderr}"
    );
    (shown.to_string_lossy().into_owned(), stderr)
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

// ----- #7: values of the wrong type or range -----

/// Each of these was converted in silence (`'1 minute'` ran as 1 s, `MAX_DATA_FOR_ID = 0`
/// parked every client forever, `IN_MAXLEN = 0` dropped every push): now the server does
/// not start, and says where, which key, and what it expected.
#[test]
fn wrong_type_values_stop_the_server_naming_file_line_and_key() {
    let table: &[(&str, &str, &str)] = &[
        (
            "$CONFIG{WAIT_TIMEOUT} = '1 minute';",
            "WAIT_TIMEOUT: \"1 minute\" given",
            "expected a number of seconds",
        ),
        (
            "$CONFIG{MAX_DATA_FOR_ID} = 0;",
            "MAX_DATA_FOR_ID: 0 given",
            "expected a whole number, 1 or more",
        ),
        ("$CONFIG{IN_MAXLEN} = 0;", "IN_MAXLEN: 0 given", "1 or more"),
        (
            "$CONFIG{OFFLINE_TIMEOUT} = undef;",
            "OFFLINE_TIMEOUT: undef given",
            "a number of seconds",
        ),
        (
            "$CONFIG{WAIT_MAXLEN} = [1, 2];",
            "WAIT_MAXLEN: [1, 2] given",
            "a whole number",
        ),
        (
            "$CONFIG{CLEAN_ID_AFTER} = \"abc\";",
            "CLEAN_ID_AFTER: \"abc\" given",
            "a number of seconds",
        ),
    ];
    for (line, what, expected) in table {
        let (conf, stderr) = startup_error("type", line);
        // BASE is three lines: the bad one is line 4.
        let at = format!("{conf}:4: invalid {what}");
        assert!(stderr.contains(&at), "{line}: wanted {at:?} in:\n{stderr}");
        assert!(
            stderr.contains(expected),
            "{line}: wanted {expected:?} in:\n{stderr}"
        );
    }
}

/// The same check on SIGHUP: the reload fails with file:line and the old settings stay.
#[test]
fn wrong_type_value_on_reload_keeps_the_old_settings() {
    let s = Server::start("$CONFIG{MAX_DATA_FOR_ID} = 1;");
    append_conf(&s, "$CONFIG{MAX_DATA_FOR_ID} = 0;");
    let line = conf_lines(&s);
    s.signal(libc::SIGHUP);
    let error = s.wait_log(
        |l| l.contains("Error reloading config, continue with old settings"),
        LOG_TIMEOUT,
    );
    assert!(
        error.contains(&format!(
            "test.conf:{line}: invalid MAX_DATA_FOR_ID: 0 given"
        )),
        "{error}"
    );
    // The old MAX_DATA_FOR_ID (1) still applies.
    s.push_ids("q", r#""a""#);
    s.push_ids("q", r#""b""#);
    let got = WaitClient::register(&s, b"identifier=0:q\n").read_body();
    assert_eq!(parse_ids(&got).len(), 1, "{got}");
}

// ----- #9: a config path that is not a regular file -----

/// A directory given as the config path was "does not exist, skipping" and the server
/// started on the public defaults; now it is a startup error naming the path and why.
#[test]
fn directory_as_config_path_is_a_startup_error() {
    let dir = temp_dir("dir");
    let (status, stderr) = run_to_exit(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        status.is_some_and(|s| !s.success()),
        "got {status:?}; stderr:\n{stderr}"
    );
    let wanted = format!("{}: is a directory", dir.display());
    assert!(stderr.contains(&wanted), "wanted {wanted:?} in:\n{stderr}");
}

// ----- #15: header injection through config values -----

/// `CHARSET` went into every reply's Content-Type as it was, CR/LF included; it and the
/// CORS origins (echoed in Access-Control-Allow-Origin) must now be header-safe.
#[test]
fn header_values_with_cr_lf_are_config_errors() {
    let table: &[(&str, &str)] = &[
        (
            r#"$CONFIG{CHARSET} = "utf-8\r\nSet-Cookie: x=1";"#,
            r#"invalid CHARSET: "utf-8\r\nSet-Cookie: x=1" given, expected a charset name"#,
        ),
        (
            r#"$CONFIG{ALLOWED_ORIGINS} = [ "https://a.example\r\nX-Evil: 1" ];"#,
            "invalid ALLOWED_ORIGINS: ",
        ),
    ];
    for (line, what) in table {
        let (conf, stderr) = startup_error("header", line);
        let at = format!("{conf}:4: {what}");
        assert!(stderr.contains(&at), "{line}: wanted {at:?} in:\n{stderr}");
        assert!(!stderr.contains('\r'), "raw CR in: {stderr:?}");
    }
}

// ----- #14: users-file warnings -----

/// Users-file warnings lacked file:line, and a line without a colon was accepted without a
/// word: both now name the users file and the line, and the line is skipped.
#[test]
fn users_file_warnings_name_file_and_line() {
    let s = Server::start_with_files(
        "$CONFIG{USERS_FILE} = \"@DIR@/users.htpasswd\";",
        &[(
            "users.htpasswd",
            "# publishers\nuser:32qjML0Qsbo8o\nspaced  :32qjML0Qsbo8o\nnocolon32qjML0Qsbo8o\n",
        )],
    );
    let users = s.dir().join("users.htpasswd");
    let users = users.display();
    for wanted in [
        format!("Warning: {users}:3: login \"spaced  \" is not alphanumeric, skipped."),
        format!("Warning: {users}:4: line without a colon (expected login:hash), skipped."),
    ] {
        s.wait_log(|m| m == wanted, LOG_TIMEOUT);
    }
    // The good line still works.
    s.push_ids("user:password@user_x", r#""a""#);
}
