//! Startup is reported only once the first worker listens (issue 18, item 5): a start
//! whose worker cannot bind, or whose addresses conflict, fails loudly and at once with a
//! non-zero exit, names the address, and leaves no pid file; the init script says FAILED
//! and status says not running. Later restarts keep restarting (see `service`).
//!
//! Data: confs with a port this test holds, or the same port twice; pid files and the
//! init script's output. May use `crate::util`, std, bash and the shipped init script.

use crate::util::*;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Time a failed start may take; a start that loops on the failure never ends.
const FAIL_FAST: Duration = Duration::from_secs(5);

/// A loopback port held by this test for as long as the listener lives.
fn taken_port() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a port to take");
    let port = l.local_addr().expect("local addr").port();
    (l, port)
}

/// A loopback port free right now (nothing will bind it: the conflict is found first).
fn free_port() -> u16 {
    taken_port().1
}

#[test]
fn start_fails_loudly_when_wait_port_is_taken() {
    let (_held, port) = taken_port();
    let run = run_to_exit(
        &format!("$CONFIG{{WAIT_ADDR}} = [ '127.0.0.1:{port}' ];"),
        &["-p", "@DIR@/rp.pid"],
        FAIL_FAST,
    );
    let status = run.status.expect("the supervisor kept running");
    assert_eq!(status.code(), Some(1), "{status}");
    let want = format!("realplexor: WAIT_ADDR 127.0.0.1:{port}: Address already in use");
    assert!(
        run.stderr.lines().any(|l| l.starts_with(&want)),
        "stderr: {}",
        run.stderr
    );
    assert!(!run.dir().join("rp.pid").exists(), "a pid file was written");
}

#[test]
fn start_fails_loudly_when_in_port_is_taken_in_the_foreground() {
    let (_held, port) = taken_port();
    let run = run_to_exit(
        &format!("$CONFIG{{IN_ADDR}} = [ '127.0.0.1:{port}' ];"),
        &["--foreground", "-p", "@DIR@/rp.pid"],
        FAIL_FAST,
    );
    let status = run.status.expect("the worker kept running");
    assert_eq!(status.code(), Some(1), "{status}");
    let want = format!("realplexor: IN_ADDR 127.0.0.1:{port}: Address already in use");
    assert!(run.stderr.contains(&want), "stderr: {}", run.stderr);
    assert!(!run.dir().join("rp.pid").exists(), "a pid file was written");
}

#[test]
fn in_addr_equal_to_wait_addr_is_a_startup_error() {
    let port = free_port();
    let conf = format!(
        "$CONFIG{{WAIT_ADDR}} = [ '127.0.0.1:{port}' ];\n$CONFIG{{IN_ADDR}} = [ '127.0.0.1:{port}' ];"
    );
    let want = format!(
        "realplexor: config error: IN_ADDR 127.0.0.1:{port} conflicts with WAIT_ADDR 127.0.0.1:{port}"
    );
    for args in [&["-p", "@DIR@/rp.pid"][..], &["--foreground"]] {
        let run = run_to_exit(&conf, args, FAIL_FAST);
        let status = run.status.expect("kept running");
        assert_eq!(status.code(), Some(1), "{args:?}: {status}");
        assert_eq!(run.stderr.trim_end(), want, "{args:?}");
        assert!(
            !run.stdout.contains("listening"),
            "{args:?} bound something"
        );
        assert!(!run.dir().join("rp.pid").exists(), "a pid file was written");
    }
}

#[test]
fn same_port_on_the_wildcard_and_on_loopback_is_a_startup_error() {
    let port = free_port();
    let run = run_to_exit(
        &format!("$CONFIG{{WAIT_ADDR}} = [ '0.0.0.0:{port}', '127.0.0.1:{port}' ];"),
        &[],
        FAIL_FAST,
    );
    assert_eq!(run.status.and_then(|s| s.code()), Some(1));
    let want = format!("WAIT_ADDR 127.0.0.1:{port} conflicts with WAIT_ADDR 0.0.0.0:{port}");
    assert!(run.stderr.contains(&want), "stderr: {}", run.stderr);
}

#[test]
fn sighup_with_conflicting_addresses_keeps_the_old_ones() {
    let s = Server::start("");
    let port = free_port();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.conf_path())
        .expect("open conf");
    writeln!(
        f,
        "$CONFIG{{WAIT_ADDR}} = [ '127.0.0.1:{port}' ];\n$CONFIG{{IN_ADDR}} = [ '127.0.0.1:{port}' ];"
    )
    .expect("append conf");
    s.signal(libc::SIGHUP);
    let line = s.wait_log(|l| l.contains("Error reloading config"), LOG_TIMEOUT);
    assert!(
        line.ends_with(&format!(
            "continue with old settings: IN_ADDR 127.0.0.1:{port} conflicts with WAIT_ADDR 127.0.0.1:{port}"
        )),
        "{line}"
    );
    let w = WaitClient::register(&s, b"identifier=abc\n");
    s.push_ids("abc", "\"still\"");
    assert!(w.read_body().contains("\"still\""));
}

/// Not a failure, but the other half of the contract: the pid file appears once the
/// first worker listens, names the supervisor, and goes when it stops.
#[test]
fn pid_file_names_the_supervisor_once_the_worker_listens() {
    let mut s = Server::start_with_args("", &["-p", "@DIR@/rp.pid"]);
    let pidfile = s.dir().join("rp.pid");
    let deadline = Instant::now() + LOG_TIMEOUT;
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&pidfile).unwrap_or_default();
        if text.ends_with('\n') {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(text, format!("{}\n", s.pid()));
    s.signal(libc::SIGTERM);
    let st = s.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(st.code(), Some(0));
    assert!(!pidfile.exists(), "the pid file outlived the server");
}

/// The shipped SysV init script, run on a temp pid prefix, log file and conf; `stop` on
/// drop, so that nothing it started outlives the test.
struct Init {
    dir: PathBuf,
    conf: PathBuf,
}

impl Init {
    fn new(conf_text: &str) -> Init {
        let dir = std::env::temp_dir().join(format!(
            "realplexor-init-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let conf = dir.join("rp.conf");
        std::fs::write(&conf, conf_text).expect("write conf");
        Init { dir, conf }
    }

    fn run(&self, verb: &str) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/dklab_realplexor.init");
        Command::new("bash")
            .arg(script)
            .arg(verb)
            .env("BIN", env!("CARGO_BIN_EXE_realplexor"))
            .env("ADDCONFIG", &self.conf)
            .env("PIDPREFIX", self.dir.join("rp"))
            .env("LOGFILE", self.dir.join("rp.log"))
            .env("CWD", &self.dir)
            .env("START_WAIT", "5")
            .env("STOP_WAIT", "5")
            .output()
            .expect("run the init script")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("rp.log")).unwrap_or_default()
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        let _ = self.run("stop");
        if std::thread::panicking() {
            eprintln!("--- init log ---\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn init_script_says_failed_when_the_wait_port_is_taken() {
    let (_held, port) = taken_port();
    let init = Init::new(&format!(
        "$CONFIG{{WAIT_ADDR}} = [ '127.0.0.1:{port}' ];\n$CONFIG{{IN_ADDR}} = [ '127.0.0.1:0' ];\n$CONFIG{{SU_USER}} = '';\n"
    ));
    let t0 = Instant::now();
    let out = init.run("start");
    let took = t0.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim_end(),
        format!("FAILED: {}; see logs", init.conf.display())
    );
    assert_eq!(out.status.code(), Some(1));
    // The failure is known as soon as the server exits, not at START_WAIT.
    assert!(took < Duration::from_secs(4), "start took {took:?}");
    assert!(
        init.log().contains(&format!(
            "WAIT_ADDR 127.0.0.1:{port}: Address already in use"
        )),
        "log: {}",
        init.log()
    );
    let status = init.run("status");
    assert_eq!(status.status.code(), Some(3), "status: {status:?}");
    assert!(String::from_utf8_lossy(&status.stdout).contains("is not running"));
}

/// systemd's side (`Type=notify` in conf/realplexor.service): `READY=1` on
/// `$NOTIFY_SOCKET` once listening (from the worker with `--foreground`, else from the
/// supervisor), and nothing from a start that fails.
#[test]
fn systemd_is_told_ready_only_by_a_worker_that_listens() {
    use std::os::unix::net::UnixDatagram;
    use std::process::Stdio;
    let dir = std::env::temp_dir().join(format!("realplexor-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (_held, port) = taken_port();
    let taken = format!("127.0.0.1:{port}");
    for (mode, wait_addr, ready) in [
        (&["--foreground"][..], "127.0.0.1:0", true),
        (&[], "127.0.0.1:0", true),
        (&["--foreground"], taken.as_str(), false),
        (&[], taken.as_str(), false),
    ] {
        let sock_path = dir.join("notify");
        let _ = std::fs::remove_file(&sock_path);
        let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let conf = dir.join("rp.conf");
        std::fs::write(
            &conf,
            format!("$CONFIG{{WAIT_ADDR}} = [ '{wait_addr}' ];\n$CONFIG{{IN_ADDR}} = [ '127.0.0.1:0' ];\n$CONFIG{{SU_USER}} = '';\n"),
        )
        .expect("write conf");
        let mut child = Command::new(env!("CARGO_BIN_EXE_realplexor"))
            .args(mode)
            .arg(&conf)
            .env("NOTIFY_SOCKET", &sock_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let mut buf = [0u8; 256];
        let mut got = None;
        let deadline = Instant::now() + LOG_TIMEOUT;
        while got.is_none() && Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                got = Some(String::from_utf8_lossy(&buf[..n]).into_owned());
            } else if let Ok(Some(_)) = child.try_wait() {
                break;
            }
        }
        let exited = child.try_wait().ok().flatten();
        let _ = child.kill();
        let _ = child.wait();
        if ready {
            assert_eq!(got.as_deref(), Some("READY=1"), "{mode:?}");
        } else {
            assert_eq!(
                got, None,
                "{mode:?}: READY from a worker that could not bind"
            );
            assert_eq!(exited.and_then(|s| s.code()), Some(1), "{mode:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
