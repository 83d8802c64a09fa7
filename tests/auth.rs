//! Publisher authentication from USERS_FILE (spec 6.3, 6.4, 7.2, 7.5): ports of
//! `t/servertest` 500-540 (spec 12.1 #25-#31) with their numbers in the names, every
//! password scheme an htpasswd file made today may hold (hashes made in the test by the
//! real `htpasswd` and `openssl passwd`), and the guest, login-name and ownership rules.

use crate::util::*;

const Z: Stats = (0, 0, 0, 0, 0);

/// The 403 reply of spec 6.3, typo included (`Deined`: PHP test 605 expects it).
fn denied(message: &str) -> String {
    let body = format!("{message}\n");
    format!("{}{body}", text_head("403 Access Deined", body.len()))
}

fn wait(s: &Server, ids: &str) -> WaitClient {
    WaitClient::register(s, format!("identifier={ids}\naaa\n").as_bytes())
}

#[test]
fn t500_login_send_unknown_user() {
    let s = start_non_anonymous("");
    let reply = s.push(b"X-Realplexor: identifier=unk:pass@abc\r\n\r\n\"aaa\"");
    assert_eq!(show(&reply), denied("unknown login: unk"));
    assert_eq!(
        show(&reply),
        format!("{}unknown login: unk\n", text_head("403 Access Deined", 19))
    );
    s.stats_of("IN: DEBUG: connection closed");
    assert_log(
        &s.normalized_from("IN: DEBUG: connection opened"),
        &[
            ("IN: DEBUG: connection opened", Z),
            ("IN: DEBUG: read <N> bytes", Z),
            ("IN: DEBUG: parsed IDs; login is \"unk\"", Z),
            ("IN: ERROR: unknown login: unk", Z),
            ("IN: DEBUG: connection closed", Z),
        ],
    );
}

#[test]
fn t510_login_send_wrong_pass() {
    let s = start_non_anonymous("");
    let reply = s.push(b"X-Realplexor: identifier=user:wrong@abc\r\n\r\n\"aaa\"");
    assert_eq!(
        show(&reply),
        format!(
            "{}invalid password for login: user\n",
            text_head("403 Access Deined", 33)
        )
    );
    s.stats_of("IN: DEBUG: connection closed");
    assert_log(
        &s.normalized_from("IN: DEBUG: connection opened"),
        &[
            ("IN: DEBUG: connection opened", Z),
            ("IN: DEBUG: read <N> bytes", Z),
            ("IN: DEBUG: parsed IDs; login is \"user\"", Z),
            ("IN: ERROR: invalid password for login: user", Z),
            ("IN: DEBUG: connection closed", Z),
        ],
    );
}

#[test]
fn t520_login_send_pass_skip_not_own() {
    let s = start_non_anonymous("");
    s.push_ids("user:password@abc", r#""aaa""#);
    s.stats_of("IN: DEBUG: connection closed");
    assert_log(
        &s.normalized_from("IN: DEBUG: connection opened"),
        &[
            ("IN: DEBUG: connection opened", Z),
            ("IN: DEBUG: read <N> bytes", Z),
            ("IN: DEBUG: parsed IDs; login is \"user\"", Z),
            ("IN: DEBUG: skipping not owned [abc] for login user", Z),
            ("IN: DEBUG: connection closed", Z),
        ],
    );
}

#[test]
fn t530_login_send_ok() {
    let s = start_non_anonymous("");
    s.push_ids("user:password@user_abc", r#""aaa""#);
    s.stats_of("IN: DEBUG: connection closed");
    let one = (0, 1, 0, 0, 1);
    assert_log(
        &s.normalized_from("IN: DEBUG: connection opened"),
        &[
            ("IN: DEBUG: connection opened", Z),
            ("IN: DEBUG: read <N> bytes", Z),
            ("IN: DEBUG: parsed IDs; login is \"user\"", Z),
            ("IN: DEBUG: added data for [user_abc]", one),
            ("IN: DEBUG: connection closed", one),
        ],
    );
}

#[test]
fn t535_login_online_no_id() {
    let s = start_non_anonymous("");
    drop(wait(&s, "user_abc"));
    s.wait_wait_closed(1);
    let reply = s.push(b"identifier=user:password@\n\nonline user_");
    assert_eq!(
        show(&reply),
        format!("{}user_abc 0\n", text_head("200 OK", 11))
    );
    s.wait_in_closed(1);
    assert_eq!(s.last_stats(), (0, 0, 0, 1, 0));
}

#[test]
fn t540_login_online_not_own() {
    let s = start_non_anonymous("");
    drop(wait(&s, "user_abc"));
    s.wait_wait_closed(1);
    for _ in 0..2 {
        let reply = s.push(b"identifier=user:password@\n\nonline u");
        assert_eq!(show(&reply), text_head("200 OK", 0));
    }
    let reply = s.push(b"identifier=user:password@\n\nonline user_");
    assert_eq!(
        show(&reply),
        format!("{}user_abc 0\n", text_head("200 OK", 11))
    );
    s.wait_in_closed(3);
    assert_eq!(s.last_stats(), (0, 0, 0, 1, 0));
}

#[test]
fn t540_login_watch() {
    let s = start_non_anonymous("");
    drop(wait(&s, "10:user_abc"));
    s.wait_wait_closed(1);
    let reply = s.push(b"identifier=user:password@\n\nwatch");
    assert_eq!(
        show(&reply),
        format!("{}FAKE 11:FAKE\n", text_head("200 OK", 13))
    );
    let reply = s.push(b"identifier=user:password@\n\nwatch 1 u");
    assert_eq!(show(&reply), text_head("200 OK", 0));
    let reply = s.push(b"identifier=user:password@\n\nwatch 1 user_");
    assert_eq!(
        show(&reply),
        format!("{}online 11:user_abc\n", text_head("200 OK", 19))
    );
    s.wait_in_closed(3);
    assert_eq!(s.last_stats(), (0, 0, 0, 1, 0));
}

// ----- The login rule on commands (spec 7.2, 7.5) ------------------------------------------

/// With credentials: prefixes not starting with `login_` are dropped; none left (or none
/// given) means nothing matches (Perl).
#[test]
fn login_filters_online_and_watch_prefixes() {
    let s = start_non_anonymous("");
    let w = wait(&s, "user_abc,user_def,other_x,userx");
    let cmd = |c: &str| ok_body(&s.push(format!("identifier=user:password@\n\n{c}").as_bytes()));
    assert_eq!(cmd("online"), "");
    assert_eq!(cmd("online user"), "");
    assert_eq!(cmd("online other_ user_d"), "user_def 1\n");
    assert_eq!(cmd("online user_ other_"), "user_abc 1\nuser_def 1\n");
    assert_eq!(cmd("watch 1"), "");
    assert_eq!(cmd("watch 1 other_"), "");
    assert_eq!(
        cmd("watch 1 user_ other_"),
        "online 11:user_abc\nonline 12:user_def\n"
    );
    // FAKE ignores the login filter.
    assert_eq!(cmd("watch 0 other_"), "FAKE 14:FAKE\n");
    drop(w);
}

/// STATS is for guests only: with credentials nothing is sent (spec 7.5, 13.1 #7).
#[test]
fn stats_refused_to_logged_in_users() {
    let s = start_with_users("", ":\nuser:32qjML0Qsbo8o\n");
    let reply = s.push(b"identifier=user:password@\n\nstats");
    assert_eq!(show(&reply), "");
    let reply = s.push(b"X-Realplexor: identifier=user:password@\r\n\r\nstats\n");
    assert_eq!(show(&reply), "");
    assert!(!s.has_log(|m| m.ends_with("DEBUG: sending stats")));
    // A wrong password still gets the 403, as before any command.
    let reply = s.push(b"identifier=user:wrong@\n\nstats");
    assert_eq!(show(&reply), denied("invalid password for login: user"));
    // The guest gets the dump.
    assert!(s.cmd("stats").starts_with("[data_to_send]\n"));
}

/// Without a guest line, commands and pushes without credentials are refused.
#[test]
fn guest_denied_without_guest_line() {
    let s = start_non_anonymous("");
    let guest = denied("access denied for guest user");
    assert_eq!(guest.len(), 29 + text_head("403 Access Deined", 29).len());
    for req in [
        &b"X-Realplexor: identifier=abc\r\n\r\n\"aaa\""[..],
        b"online",
        b"watch 0",
        b"stats",
        b"X-Realplexor: identifier=\r\n\r\nonline\n",
    ] {
        assert_eq!(show(&s.push(req)), guest, "{}", show(req));
    }
    s.wait_log(
        |m| m.ends_with("ERROR: access denied for guest user"),
        LOG_TIMEOUT,
    );
    assert!(!s.has_log(|m| m.contains("added data")));
    // A request without marker and command is never authenticated and does nothing.
    assert_eq!(show(&s.push(b"hello")), "");
    s.wait_in_closed(6);
    assert_eq!(s.last_stats(), Z);
}

/// The `:` line admits guests, who may push to any id; users still need their password.
#[test]
fn guest_line_admits_anonymous_publishers() {
    let s = start_with_users("", "# publishers\n:\nuser:32qjML0Qsbo8o\n");
    s.push_ids("abc,user_x", r#""aaa""#);
    s.wait_log(
        |m| m.ends_with("DEBUG: added data for [abc,user_x]"),
        LOG_TIMEOUT,
    );
    assert_eq!(s.cmd("online"), "");
    let reply = s.push(b"X-Realplexor: identifier=user:nope@user_abc\r\n\r\n\"aaa\"");
    assert_eq!(show(&reply), denied("invalid password for login: user"));
    let reply = s.push(b"X-Realplexor: identifier=nobody:x@abc\r\n\r\n\"aaa\"");
    assert_eq!(show(&reply), denied("unknown login: nobody"));
}

/// Logins that are not `[A-Za-z0-9]+` are skipped at startup with the original's warning
/// (plus the users file's path and line); using one is an unknown login.
#[test]
fn non_alphanumeric_login_is_skipped_with_a_warning() {
    let s = start_with_users(
        "",
        "bad_login:32qjML0Qsbo8o\nuser:32qjML0Qsbo8o\nbad-dash:32qjML0Qsbo8o\n",
    );
    let users = s.dir().join("users.htpasswd");
    for (l, at) in [("bad_login", 1), ("bad-dash", 3)] {
        let line = format!(
            "Warning: {}:{at}: login \"{l}\" is not alphanumeric, skipped.",
            users.display()
        );
        s.wait_log(|m| m == line, LOG_TIMEOUT);
    }
    let reply = s.push(b"X-Realplexor: identifier=bad_login:password@bad_login_x\r\n\r\n\"a\"");
    assert_eq!(show(&reply), denied("unknown login: bad_login"));
    s.push_ids("user:password@user_x", r#""a""#);
    s.wait_log(
        |m| m.ends_with("DEBUG: added data for [user_x]"),
        LOG_TIMEOUT,
    );
}

/// Ownership (spec 6.4): only `login_` ids are pushed; limiter ids are not checked.
#[test]
fn login_owns_only_its_prefixed_ids() {
    let s = start_non_anonymous("");
    s.push_ids("user:password@user_a,abc,10:user_b,userc,*other", r#""m""#);
    s.wait_log(
        |m| m.ends_with("DEBUG: added data for [user_a,user_b]"),
        LOG_TIMEOUT,
    );
    for id in ["abc", "userc"] {
        let line = format!("DEBUG: skipping not owned [{id}] for login user");
        s.wait_log(|m| m.ends_with(&line), LOG_TIMEOUT);
    }
    let w = WaitClient::register(&s, b"identifier=1:user_a,other\n");
    assert_eq!(
        mask_generated(&w.read_body()),
        body(&[block(&[("user_a", GEN)], r#""m""#)])
    );
}

// ----- Password schemes ----------------------------------------------------------------------

/// One login per scheme, each hash made here by the real tool.
struct Scheme {
    login: &'static str,
    /// The command that made the hash, for messages.
    how: String,
    hash: String,
}

const PASSWORD: &str = "Pa55:w-rd!";

fn htpasswd(flag: &str, password: &str) -> String {
    let line = tool_output("htpasswd", "apache2-utils", &["-nb", flag, "u", password]);
    line.strip_prefix("u:")
        .unwrap_or_else(|| panic!("htpasswd {flag} printed {line:?}"))
        .to_string()
}

fn openssl(flag: &str, password: &str) -> String {
    tool_output("openssl", "openssl", &["passwd", flag, password])
}

fn schemes(password: &str) -> Vec<Scheme> {
    let mut v = Vec::new();
    let mut add = |login: &'static str, how: &str, hash: String| {
        v.push(Scheme {
            login,
            how: how.to_string(),
            hash,
        })
    };
    add("htdes", "htpasswd -nbd", htpasswd("-d", password));
    add("htmd5", "htpasswd -nbm", htpasswd("-m", password));
    add("htsha", "htpasswd -nbs", htpasswd("-s", password));
    let bcrypt = htpasswd("-B", password);
    add("htbcrypt", "htpasswd -nbB", bcrypt.clone());
    // `$2a$`, `$2b$` and `$2y$` are one algorithm for ASCII passwords (crypt_blowfish):
    // only the prefix differs, and nothing in Debian prints the other two.
    let tail = bcrypt
        .strip_prefix("$2y$")
        .unwrap_or_else(|| panic!("htpasswd -B printed {bcrypt:?}"));
    add("bcrypt2b", "htpasswd -nbB as $2b$", format!("$2b${tail}"));
    add("bcrypt2a", "htpasswd -nbB as $2a$", format!("$2a${tail}"));
    add("osmd5", "openssl passwd -1", openssl("-1", password));
    add("ossha256", "openssl passwd -5", openssl("-5", password));
    add("ossha512", "openssl passwd -6", openssl("-6", password));
    add("osapr1", "openssl passwd -apr1", openssl("-apr1", password));
    v
}

#[test]
fn every_htpasswd_scheme_is_accepted_with_its_password_only() {
    let list = schemes(PASSWORD);
    // Each hash has the form its tool is known for.
    let prefixes = [
        "", "$apr1$", "{SHA}", "$2y$", "$2b$", "$2a$", "$1$", "$5$", "$6$", "$apr1$",
    ];
    for (sc, p) in list.iter().zip(prefixes) {
        assert!(sc.hash.starts_with(p), "{}: {}", sc.how, sc.hash);
    }
    assert_eq!(list[0].hash.len(), 13, "DES: {}", list[0].hash);

    let users: String = list
        .iter()
        .map(|sc| format!("{}:{}\n", sc.login, sc.hash))
        .collect();
    let s = start_with_users("", &users);
    let w = wait(
        &s,
        &list
            .iter()
            .map(|sc| format!("{}_x", sc.login))
            .collect::<Vec<_>>()
            .join(","),
    );
    for sc in &list {
        let ask = |pw: &str| {
            s.push(format!("identifier={}:{pw}@\n\nonline {}_", sc.login, sc.login).as_bytes())
        };
        assert_eq!(
            ok_body(&ask(PASSWORD)),
            format!("{}_x 1\n", sc.login),
            "{} ({}) refused the right password",
            sc.how,
            sc.hash
        );
        // DES reads only 8 bytes, so its wrong passwords differ early.
        let long_wrongs: &[&str] = if sc.login == "htdes" {
            &[]
        } else {
            &["Pa55:w-rd", "Pa55:w-rd!!"]
        };
        for wrong in ["pa55:w-rd!", "Pa55;w-rd!", "Pa55:w-", "x"]
            .iter()
            .chain(long_wrongs)
        {
            assert_eq!(
                show(&ask(wrong)),
                denied(&format!("invalid password for login: {}", sc.login)),
                "{} ({}) took {wrong:?}",
                sc.how,
                sc.hash
            );
        }
        // A push with the right password is owned and delivered to the login's ids.
        let reply = s.push(
            format!(
                "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nX-Realplexor: identifier={}:{PASSWORD}@{}_y\r\n\r\n\"m\"",
                sc.login, sc.login
            )
            .as_bytes(),
        );
        assert_eq!(show(&reply), "", "{}", sc.how);
        let line = format!("DEBUG: added data for [{}_y]", sc.login);
        s.wait_log(|m| m.ends_with(&line), LOG_TIMEOUT);
    }
    drop(w);
}

/// The original's fixture hash (`user:32qjML0Qsbo8o`, DES of `password`) and the DES
/// limit of 8 significant bytes, which the platform crypt(3) keeps.
#[test]
fn des_fixture_of_the_original() {
    let s = start_non_anonymous("");
    let ok = |pw: &str| s.push(format!("identifier=user:{pw}@\n\nonline user_").as_bytes());
    assert_eq!(ok_body(&ok("password")), "");
    assert_eq!(ok_body(&ok("password123")), "");
    for wrong in ["passwor", "Password", "drowssap"] {
        assert_eq!(
            show(&ok(wrong)),
            denied("invalid password for login: user"),
            "{wrong}"
        );
    }
}

#[test]
fn unknown_user_is_refused_with_any_password() {
    let s = start_non_anonymous("");
    for req in [
        "identifier=nobody:password@\n\nonline nobody_",
        "identifier=User:password@\n\nonline User_",
        "X-Realplexor: identifier=nobody:password@nobody_a\r\n\r\n\"a\"",
    ] {
        let login = req
            .split_once('=')
            .and_then(|(_, r)| r.split_once(':'))
            .map(|(l, _)| l)
            .unwrap_or_default();
        assert_eq!(
            show(&s.push(req.as_bytes())),
            denied(&format!("unknown login: {login}")),
            "{req}"
        );
    }
}

/// Credentials are checked as soon as the marker is parsed: the 403 comes before the
/// publisher's EOF, and the buffered data is discarded (spec 6.1, 6.3).
#[test]
fn auth_failure_is_answered_before_eof() {
    let s = start_non_anonymous("");
    let mut c = in_stream(&s);
    std::io::Write::write_all(&mut c, b"X-Realplexor: identifier=user:bad@user_a\r\n")
        .expect("write");
    // No shutdown: the reply and the close come by themselves.
    assert_eq!(
        show(&read_to_eof(&mut c)),
        denied("invalid password for login: user")
    );
    s.wait_in_closed(1);
    assert!(!s.has_log(|m| m.contains("added data")));
    assert_eq!(s.last_stats(), Z);
}

/// Perl quirk (spec 3.4): a login of literally `0` counts as no login, so guest rules apply.
#[test]
fn login_zero_is_no_login() {
    let s = start_non_anonymous("");
    let reply = s.push(b"X-Realplexor: identifier=0:x@abc\r\n\r\n\"a\"");
    assert_eq!(show(&reply), denied("access denied for guest user"));
    let s = start_with_users("", ":\n");
    s.push_ids("0:x@abc", r#""a""#);
    s.wait_log(|m| m.ends_with("DEBUG: added data for [abc]"), LOG_TIMEOUT);
}
