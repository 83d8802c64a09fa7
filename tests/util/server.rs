//! Starting the real `realplexor` binary for a test, and controlling its process.
//!
//! Data: `Server { child, dir, log, stderr, wait_addrs, in_addrs }`: the child (the
//! supervisor, or the worker itself with `--foreground`), its temp dir holding
//! `test.conf` (`BASE_CONF` plus the test's text) and fixture files, and two `Log`s that
//! reader threads fill with the child's stdout and stderr lines. The listening addresses
//! come from the `WAIT: listening` / `IN: listening` log lines (TCP ones: a test that
//! listens on `unix:@DIR@/...` knows its paths).
//!
//! May use std, `libc` (signals) and the sibling `log` module (startup waits on the log).
//! Killed and its temp dir removed on drop; on a panic both logs are printed.

use super::log::Entry;
use super::LOG_TIMEOUT;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Lines every test conf starts with: ephemeral loopback ports, no privilege drop, and no
/// coalescing window (the original's timing, which the ported tests' log orders assume;
/// `coalesce` sets its own).
const BASE_CONF: &str = "$CONFIG{WAIT_ADDR} = [ '127.0.0.1:0' ];\n\
$CONFIG{IN_ADDR} = [ '127.0.0.1:0' ];\n\
$CONFIG{SU_USER} = '';\n\
$CONFIG{COALESCE_MS} = 0;\n";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

#[derive(Default)]
pub(super) struct LogBuf {
    pub(super) lines: Vec<String>,
    pub(super) closed: bool,
}

#[derive(Default)]
pub(super) struct Log {
    buf: Mutex<LogBuf>,
    pub(super) cond: Condvar,
}

impl Log {
    pub(super) fn lock(&self) -> MutexGuard<'_, LogBuf> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn dump(&self) -> String {
        self.lock().lines.join("\n")
    }
}

/// A fresh temp dir holding `files` and `test.conf` (the base conf plus `extra_conf`, with
/// `@DIR@` replaced by the dir); returns the dir and the conf's path.
/// The cluster-mode run of the data-path tests (`scripts/test` runs them a second time
/// with REALPLEXOR_TEST_CLUSTER_REDIS=host:port of a redis-server it started): every server
/// gets that Redis, its own key prefix and REALPLEXOR_TEST_WORKERS workers (default 2). A
/// test's own settings come after, so they win.
fn cluster_conf(n: usize) -> String {
    let Ok(redis) = std::env::var("REALPLEXOR_TEST_CLUSTER_REDIS") else {
        return String::new();
    };
    // Fixed free ports, so that every worker listens on the same ones (SO_REUSEPORT) and a
    // client lands on any of them; a test's own addresses come after and win.
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    };
    format!(
        "$CONFIG{{CLUSTER_REDIS}} = '{redis}';\n$CONFIG{{CLUSTER_PREFIX}} = 'it{}_{n}';\n$CONFIG{{WORKERS}} = {};\n$CONFIG{{WAIT_ADDR}} = ['127.0.0.1:{}'];\n$CONFIG{{IN_ADDR}} = ['127.0.0.1:{}'];\n",
        std::process::id(),
        cluster_workers(),
        port(),
        port()
    )
}

/// The workers of the cluster-mode run (1 outside it).
pub fn cluster_workers() -> usize {
    if std::env::var_os("REALPLEXOR_TEST_CLUSTER_REDIS").is_none() {
        return 1;
    }
    std::env::var("REALPLEXOR_TEST_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2)
}

pub(super) fn prepare(extra_conf: &str, files: &[(&str, &str)]) -> (PathBuf, PathBuf) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("realplexor-it-{}-{}", std::process::id(), n));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create temp dir");
    for (name, content) in files {
        fs::write(dir.join(name), content).expect("write fixture file");
    }
    let conf = dir.join("test.conf");
    let extra_conf = extra_conf.replace("@DIR@", &dir.to_string_lossy());
    fs::write(
        &conf,
        format!("{BASE_CONF}{}{extra_conf}\n", cluster_conf(n)),
    )
    .expect("write conf");
    (dir, conf)
}

fn spawn_reader(stream: impl Read + Send + 'static, log: Arc<Log>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let mut line = String::from_utf8_lossy(&raw).into_owned();
                    while line.ends_with('\n') || line.ends_with('\r') {
                        line.pop();
                    }
                    log.lock().lines.push(line);
                    log.cond.notify_all();
                }
            }
        }
        log.lock().closed = true;
        log.cond.notify_all();
    });
}

/// A running `realplexor` child with its own temp dir and conf; killed on drop.
pub struct Server {
    child: Child,
    dir: PathBuf,
    pub(super) log: Arc<Log>,
    pub(super) stderr: Arc<Log>,
    wait_addrs: Vec<SocketAddr>,
    in_addrs: Vec<SocketAddr>,
}

impl Server {
    /// Starts the server with the base conf plus `extra_conf` (fixture text).
    pub fn start(extra_conf: &str) -> Server {
        Server::start_with_files(extra_conf, &[])
    }

    /// As `start`, and first writes `files` (name, content) beside the conf. A fixture
    /// refers to them as `@DIR@/<name>` (replaced with the temp dir here) or through the
    /// original's `dirname(abs_path(__FILE__))` idiom.
    pub fn start_with_files(extra_conf: &str, files: &[(&str, &str)]) -> Server {
        Server::launch(extra_conf, files, None, &[])
    }

    /// As `start`, with command-line `args` before the conf (`@DIR@` is the temp dir),
    /// e.g. `["-p", "@DIR@/rp.pid"]`.
    pub fn start_with_args(extra_conf: &str, args: &[&str]) -> Server {
        Server::launch(extra_conf, &[], None, args)
    }

    fn launch(
        extra_conf: &str,
        files: &[(&str, &str)],
        shell_prefix: Option<&str>,
        args: &[&str],
    ) -> Server {
        let (dir, conf) = prepare(extra_conf, files);

        // With a shell prefix: `sh -c '<prefix>exec realplexor --foreground conf'`, so the
        // child is the worker itself; without: the default supervisor + worker.
        let mut cmd = match shell_prefix {
            Some(prefix) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("{prefix}exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_realplexor"))
                    .arg("--foreground");
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_realplexor")),
        };
        let mut child = cmd
            .args(
                args.iter()
                    .map(|a| a.replace("@DIR@", &dir.to_string_lossy())),
            )
            .arg(&conf)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn realplexor");
        let log = Arc::new(Log::default());
        let stderr = Arc::new(Log::default());
        spawn_reader(child.stdout.take().expect("stdout"), Arc::clone(&log));
        spawn_reader(child.stderr.take().expect("stderr"), Arc::clone(&stderr));
        // Build the value first so that Drop kills the child if startup fails.
        let mut server = Server {
            child,
            dir,
            log,
            stderr,
            wait_addrs: Vec::new(),
            in_addrs: Vec::new(),
        };
        server.wait_until("the IN: listening line", LOG_TIMEOUT, |es| {
            es.iter()
                .any(|e| e.msg.starts_with("IN: listening "))
                .then_some(())
        });
        // TCP addresses only: `unix:/path` listeners are the tests' own paths.
        let parse = |prefix: &str, es: &[Entry]| -> Vec<SocketAddr> {
            es.iter()
                .filter_map(|e| e.msg.strip_prefix(prefix))
                .filter(|a| !a.starts_with("unix:"))
                .map(|a| {
                    a.trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("bad listening address {a:?}"))
                })
                .fold(Vec::new(), |mut v: Vec<SocketAddr>, a| {
                    // Several workers log the same shared address.
                    if !v.contains(&a) {
                        v.push(a);
                    }
                    v
                })
        };
        let entries = server.entries();
        server.wait_addrs = parse("WAIT: listening ", &entries);
        server.in_addrs = parse("IN: listening ", &entries);
        let wait_unix = entries
            .iter()
            .any(|e| e.msg.starts_with("WAIT: listening unix:"));
        assert!(
            !server.wait_addrs.is_empty() || wait_unix,
            "no WAIT: listening line before IN: listening; log:\n{}",
            server.log.dump()
        );
        server
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn wait_addr(&self) -> SocketAddr {
        self.wait_addrs[0]
    }

    pub fn wait_addrs(&self) -> &[SocketAddr] {
        &self.wait_addrs
    }

    pub fn in_addr(&self) -> SocketAddr {
        self.in_addrs[0]
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- realplexor stdout ---\n{}\n--- realplexor stderr ---\n{}",
                self.log.dump(),
                self.stderr.dump()
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Process control for the service tests (signals, exit, stderr).
impl Server {
    /// The pid of the process the test started (the supervisor in the default mode).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The override conf the server was started with.
    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("test.conf")
    }

    /// Sends `sig` to the started process.
    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill on the pid of our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    /// Waits for the started process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits for a stderr line matching `pred`.
    pub fn wait_stderr(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut guard = self.stderr.lock();
        loop {
            if let Some(l) = guard.lines.iter().find(|l| pred(l)) {
                return l.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                drop(guard);
                panic!(
                    "timed out waiting for a stderr line; stderr:\n{}\nstdout:\n{}",
                    self.stderr.dump(),
                    self.log.dump()
                );
            }
            guard = self
                .stderr
                .cond
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every `IN: listening` address logged so far (a restarted worker binds anew).
    pub fn in_addrs_logged(&self) -> Vec<SocketAddr> {
        self.entries()
            .iter()
            .filter_map(|e| e.msg.strip_prefix("IN: listening "))
            .filter_map(|a| a.trim().parse().ok())
            .collect()
    }
}

impl Server {
    /// As `start`, with the server's open-files limit (soft and hard) set to `nofile`
    /// through `sh -c 'ulimit -n N; exec ...'`, and `--foreground`: the shell execs, so the
    /// child (`pid()`) is the worker itself, whose descriptors and CPU the test measures.
    pub fn start_with_nofile(extra_conf: &str, nofile: u32) -> Server {
        Server::start_foreground_with(extra_conf, &format!("ulimit -n {nofile} && "))
    }

    /// As `start`, but the worker itself (`--foreground`, no supervisor), so that `pid()`
    /// is the process whose memory the test measures.
    pub fn start_foreground(extra_conf: &str) -> Server {
        Server::start_foreground_with(extra_conf, "")
    }

    fn start_foreground_with(extra_conf: &str, shell_prefix: &str) -> Server {
        Server::launch(extra_conf, &[], Some(shell_prefix), &[])
    }

    /// Everything the server wrote to stderr so far (a panic's message lands there).
    pub fn stderr_text(&self) -> String {
        self.stderr.dump()
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
