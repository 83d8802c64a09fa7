//! A real `redis-server` for the cluster-mode tests: started on a free loopback port with
//! persistence off (or the arguments a test gives, such as AOF), restartable on the same
//! port, killed by PID and its temp dir removed on drop.
//!
//! Data shape: `Redis { child, port, dir, extra, unix }`.
//! Uses: std only (and `realplexor::cluster::addr` for the targets a link test wants).

use realplexor::cluster::addr::{self, Target};
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DEADLINE: Duration = Duration::from_secs(10);
static SEQ: AtomicUsize = AtomicUsize::new(0);

fn temp_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "rp-cluster-{tag}-{}-{n}-{nanos}",
        std::process::id()
    ));
    fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A `redis-server` child; killed by PID and its temp dir removed on drop.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    unix: bool,
}

impl Redis {
    pub fn start(extra: &[&str]) -> Redis {
        Redis::start_with(extra, false)
    }

    /// Also listening on `sock_path()`.
    pub fn start_unix() -> Redis {
        Redis::start_with(&[], true)
    }

    fn start_with(extra: &[&str], unix: bool) -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
            dir: temp_dir("redis"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            unix,
        };
        r.launch();
        r
    }

    pub fn sock_path(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// Starts the server (again) on the same port and waits until it accepts.
    pub fn launch(&mut self) {
        let bin = ["/usr/bin/redis-server", "redis-server"]
            .into_iter()
            .find(|b| !b.starts_with('/') || fs::metadata(b).is_ok())
            .unwrap();
        let log = fs::File::create(self.dir.join("redis.log")).unwrap();
        let unix = self.unix;
        let mut cmd = Command::new(bin);
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if unix {
            cmd.arg("--unixsocket").arg(self.sock_path());
        }
        let mut child = cmd
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let end = Instant::now() + DEADLINE;
        loop {
            let up = if unix {
                std::os::unix::net::UnixStream::connect(self.sock_path()).is_ok()
            } else {
                TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            };
            if up {
                break;
            }
            if let Ok(Some(st)) = child.try_wait() {
                let log = fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                panic!("redis-server exited ({st}): {log}");
            }
            assert!(Instant::now() < end, "redis-server did not start");
            thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, userinfo: &str, db: u32) -> Target {
        addr::parse(&format!("redis://{userinfo}127.0.0.1:{}/{db}", self.port))
            .unwrap()
            .unwrap()
    }

    pub fn target(&self) -> Target {
        addr::parse(&format!("127.0.0.1:{}", self.port))
            .unwrap()
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
