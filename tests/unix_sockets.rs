//! `unix:/path` listen addresses on both lines (issue 15): a WAIT client and an IN
//! publisher over Unix sockets get the same bytes as over TCP, ONLINE over the IN socket,
//! a TCP and a Unix WAIT address side by side, the socket file's mode, a stale file
//! replaced, a live one a startup error, and the file removed on SIGTERM and on a reload
//! that drops the address.
//!
//! Data: socket paths in the server's temp dir (`@DIR@/wait.sock`), or, for the tests
//! that must place a file before the server starts, in a `SockDir` of their own.
//! Uses: `util` (Server, run_to_exit, WaitClient, pushes), std's `UnixStream`.

use crate::util::*;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Both lines on TCP and on a Unix socket in the server's dir.
const BOTH: &str = "$CONFIG{WAIT_ADDR} = [ '127.0.0.1:0', 'unix:@DIR@/wait.sock' ];\n\
$CONFIG{IN_ADDR} = [ '127.0.0.1:0', 'unix:@DIR@/in.sock' ];";

/// Starts on `BOTH`, once every listener is up (the harness waits for the first `IN:
/// listening` line; the Unix IN socket is bound after it).
fn start_both() -> Server {
    let s = Server::start(BOTH);
    let want = format!("IN: listening unix:{}", s.dir().join("in.sock").display());
    s.wait_log(|l| l == want, LOG_TIMEOUT);
    s
}

fn connect(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s
}

fn read_to_end(s: &mut UnixStream) -> Vec<u8> {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read to EOF");
    out
}

/// A WAIT client on a Unix socket, registered once the header block is here.
fn wait_unix(path: &Path, request: &[u8]) -> UnixStream {
    let mut s = connect(path);
    s.write_all(request).expect("WAIT write");
    let mut head = vec![0u8; WAIT_HEADER.len()];
    s.read_exact(&mut head).expect("header block");
    assert_eq!(show(&head), show(WAIT_HEADER.as_bytes()));
    s
}

/// An IN request on a Unix socket: write, half-close, read the reply to EOF.
fn push_unix(path: &Path, raw: &[u8]) -> Vec<u8> {
    let mut s = connect(path);
    s.write_all(raw).expect("IN write");
    s.shutdown(Shutdown::Write).expect("half-close");
    read_to_end(&mut s)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LOG_TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temp dir of the test's own (removed on drop), for files placed before the start.
struct SockDir(PathBuf);

impl SockDir {
    fn new(name: &str) -> SockDir {
        let dir = std::env::temp_dir().join(format!("rp-unix-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        SockDir(dir)
    }

    fn sock(&self) -> PathBuf {
        self.0.join("wait.sock")
    }
}

impl Drop for SockDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn wait_and_in_over_unix_sockets_deliver_the_bytes_tcp_does() {
    let s = start_both();
    let (wait_sock, in_sock) = (s.dir().join("wait.sock"), s.dir().join("in.sock"));
    s.wait_log(
        |l| l == format!("WAIT: listening unix:{}", wait_sock.display()),
        LOG_TIMEOUT,
    );
    let mut over_unix = wait_unix(&wait_sock, b"identifier=abc\n");
    let over_tcp = WaitClient::register(&s, b"identifier=abc\n");
    let reply = push_unix(&in_sock, b"X-Realplexor: identifier=abc\r\n\r\n\"hello\"");
    assert_eq!(show(&reply), "", "reply to a push must be empty");
    let got_unix = String::from_utf8(read_to_end(&mut over_unix)).expect("utf-8");
    let got_tcp = over_tcp.read_body();
    assert_eq!(got_unix, got_tcp, "the same bytes on both WAIT addresses");
    assert_eq!(
        mask_generated(&got_unix),
        body(&[block(&[("abc", GEN)], "\"hello\"")])
    );
    // Log lines name a Unix client by the socket it came through.
    s.wait_log(
        |l| l.starts_with(&format!("WAIT: unix:{}", wait_sock.display())),
        LOG_TIMEOUT,
    );
    // A push over TCP reaches a Unix client too.
    let mut later = wait_unix(&wait_sock, b"identifier=xyz\n");
    s.push_ids("xyz", "\"tcp\"");
    let got = String::from_utf8(read_to_end(&mut later)).expect("utf-8");
    assert_eq!(
        mask_generated(&got),
        body(&[block(&[("xyz", GEN)], "\"tcp\"")])
    );
}

#[test]
fn online_over_the_in_unix_socket() {
    let s = start_both();
    let (wait_sock, in_sock) = (s.dir().join("wait.sock"), s.dir().join("in.sock"));
    let _parked = wait_unix(&wait_sock, b"identifier=abc\n");
    let _parked_tcp = WaitClient::register(&s, b"identifier=def\n");
    let over_unix = push_unix(&in_sock, b"X-Realplexor: identifier=\r\n\r\nonline\r\n\r\n");
    let over_tcp = s.push(b"X-Realplexor: identifier=\r\n\r\nonline\r\n\r\n");
    assert_eq!(show(&over_unix), show(&over_tcp));
    let online = ok_body(&over_unix);
    let mut lines: Vec<&str> = online.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["abc 1", "def 1"]);
}

#[test]
fn socket_files_get_mode_0666_and_are_removed_on_sigterm() {
    let mut s = start_both();
    let socks = [s.dir().join("wait.sock"), s.dir().join("in.sock")];
    for p in &socks {
        let meta = std::fs::symlink_metadata(p).expect("socket file");
        assert!(meta.file_type().is_socket(), "{}", p.display());
        assert_eq!(meta.permissions().mode() & 0o777, 0o666, "{}", p.display());
    }
    // A served round trip: the worker's signal handling is up (a signal before that
    // kills it the default way, which leaves the files for the next start to replace).
    s.barrier();
    s.signal(libc::SIGTERM);
    let st = s.wait_exit(Duration::from_secs(3)).expect("exits");
    assert_eq!(st.code(), Some(0));
    for p in &socks {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn a_reload_without_the_address_removes_its_file() {
    let s = start_both();
    let wait_sock = s.dir().join("wait.sock");
    let parked = WaitClient::register(&s, b"identifier=abc\n");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.conf_path())
        .expect("open conf");
    writeln!(f, "$CONFIG{{WAIT_ADDR}} = [ '127.0.0.1:0' ];").expect("append conf");
    s.signal(libc::SIGHUP);
    s.wait_log(
        |l| l == format!("WAIT: no longer listening unix:{}", wait_sock.display()),
        LOG_TIMEOUT,
    );
    wait_until("the socket file to go", || !wait_sock.exists());
    // The TCP listener and its parked client are untouched.
    s.push_ids("abc", "\"x\"");
    assert!(parked.read_body().contains("\"x\""));
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = SockDir::new("stale");
    let sock = dir.sock();
    // Bound, then closed without removing the file: what a killed server leaves.
    drop(UnixListener::bind(&sock).expect("stale socket"));
    assert!(UnixStream::connect(&sock).is_err(), "nothing listens");
    let s = Server::start(&format!(
        "$CONFIG{{WAIT_ADDR}} = [ 'unix:{}' ];",
        sock.display()
    ));
    let mut w = wait_unix(&sock, b"identifier=abc\n");
    s.push_ids("abc", "\"fresh\"");
    let got = String::from_utf8(read_to_end(&mut w)).expect("utf-8");
    assert!(got.contains("\"fresh\""), "{got}");
}

#[test]
fn a_socket_where_a_server_listens_is_a_startup_error() {
    let dir = SockDir::new("live");
    let sock = dir.sock();
    let held = UnixListener::bind(&sock).expect("live socket");
    let run = run_to_exit(
        &format!("$CONFIG{{WAIT_ADDR}} = [ 'unix:{}' ];", sock.display()),
        &["--foreground"],
        Duration::from_secs(10),
    );
    assert_eq!(run.status.and_then(|s| s.code()), Some(1), "{}", run.stderr);
    let want = format!(
        "realplexor: WAIT_ADDR unix:{}: Address already in use",
        sock.display()
    );
    assert!(run.stderr.contains(&want), "stderr: {}", run.stderr);
    // The other server's socket is still there and still accepts.
    let _c = UnixStream::connect(&sock).expect("still listening");
    assert!(held.accept().is_ok());
}

#[test]
fn the_same_socket_path_twice_is_a_config_error() {
    let run = run_to_exit(
        "$CONFIG{WAIT_ADDR} = [ 'unix:@DIR@/a.sock' ];\n\
         $CONFIG{IN_ADDR} = [ 'unix:@DIR@//a.sock' ];",
        &["--foreground"],
        Duration::from_secs(10),
    );
    assert_eq!(run.status.and_then(|s| s.code()), Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("IN_ADDR unix:") && run.stderr.contains("conflicts with WAIT_ADDR"),
        "stderr: {}",
        run.stderr
    );
}
