//! The server under test: started by us (`--server-cmd 'CMD {conf}'`) or already running
//! (`--wait ADDR --in ADDR [--server-pid PID]`), and its memory and CPU read from /proc.
//!
//! Structure: `Target { name, wait: [addr], inn: [addr], pid, child }`. A started server
//! gets a Perl-syntax override with two free loopback ports (`$CONFIG{WAIT_ADDR} = [...]`)
//! and runs in its own process group, which `Drop` ends by id (SIGTERM, then SIGKILL).
//! RSS and CPU are summed over the server's process tree (the shell wrapper, the server,
//! any child it forks).
//!
//! Uses: `clock`.

use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Target {
    pub name: String,
    pub wait: Vec<SocketAddr>,
    pub inn: Vec<SocketAddr>,
    pub pid: Option<u32>,
    child: Option<Child>,
    dir: Option<PathBuf>,
}

/// Two distinct free loopback ports (bound together, then released).
fn free_ports() -> std::io::Result<(u16, u16)> {
    let a = TcpListener::bind("127.0.0.1:0")?;
    let b = TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}

/// The override file for a server we start.
pub fn override_conf(wait_port: u16, in_port: u16, extra: &str) -> String {
    format!(
        "$CONFIG{{WAIT_ADDR}} = [ '127.0.0.1:{wait_port}' ];\n\
         $CONFIG{{IN_ADDR}} = [ '127.0.0.1:{in_port}' ];\n\
         $CONFIG{{SU_USER}} = '';\n\
         $CONFIG{{VERBOSITY}} = 0;\n\
         {extra}return 1;\n"
    )
}

impl Target {
    /// Starts `cmd` (with `{conf}` replaced by the override's path) through `sh -c` and
    /// waits until both ports accept connections.
    pub fn spawn(name: &str, cmd: &str, extra_conf: &str) -> Result<Target, String> {
        let dir = std::env::temp_dir().join(format!(
            "realplexor-loadtest-{}-{}",
            std::process::id(),
            crate::clock::now_ns()
        ));
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (wp, ip) = free_ports().map_err(|e| format!("free ports: {e}"))?;
        let conf = dir.join("loadtest.conf");
        fs::write(&conf, override_conf(wp, ip, extra_conf))
            .map_err(|e| format!("{}: {e}", conf.display()))?;
        let log = fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
        let log2 = log.try_clone().map_err(|e| e.to_string())?;
        let line = cmd.replace("{conf}", &conf.display().to_string());
        let child = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("{line}: {e}"))?;
        let mut t = Target {
            name: name.to_string(),
            wait: vec![SocketAddr::from(([127, 0, 0, 1], wp))],
            inn: vec![SocketAddr::from(([127, 0, 0, 1], ip))],
            pid: Some(child.id()),
            child: Some(child),
            dir: Some(dir),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = t
                .wait
                .iter()
                .chain(&t.inn)
                .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok());
            if up {
                break;
            }
            if let Some(c) = t.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(format!(
                        "{line}: exited with {st} before listening; {}",
                        t.log()
                    ));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("{line}: not listening after 30 s; {}", t.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(t)
    }

    /// A server somebody else runs.
    pub fn attach(
        name: &str,
        wait: Vec<SocketAddr>,
        inn: Vec<SocketAddr>,
        pid: Option<u32>,
    ) -> Target {
        Target {
            name: name.to_string(),
            wait,
            inn,
            pid,
            child: None,
            dir: None,
        }
    }

    fn log(&self) -> String {
        self.dir
            .as_ref()
            .and_then(|d| fs::read_to_string(d.join("server.log")).ok())
            .map(|s| format!("log: {}", s.chars().take(2000).collect::<String>()))
            .unwrap_or_default()
    }

    /// Whether a server we started is still running.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    fn tree(&self) -> Vec<u32> {
        self.pid.map(process_tree).unwrap_or_default()
    }

    /// VmRSS of the process tree, bytes.
    pub fn rss(&self) -> Option<u64> {
        let pids = self.tree();
        if pids.is_empty() {
            return None;
        }
        Some(pids.iter().filter_map(|&p| rss_of(p)).sum())
    }

    /// Memory of the process tree, bytes: (PSS, RSS) summed from each process's
    /// /proc/PID/smaps_rollup. PSS counts a page shared by k processes as 1/k in each, so
    /// the sum counts the workers' shared code once; RSS counts it in every process.
    pub fn mem(&self) -> Option<(u64, u64)> {
        let pids = self.tree();
        if pids.is_empty() {
            return None;
        }
        let (mut pss, mut rss) = (0, 0);
        for p in pids {
            if let Some((a, b)) = rollup_of(p) {
                pss += a;
                rss += b;
            }
        }
        Some((pss, rss))
    }

    /// How many processes the server's tree has (supervisor and workers).
    pub fn procs(&self) -> usize {
        self.tree().len()
    }

    /// CPU time (user + system) of the process tree, ns.
    pub fn cpu_ns(&self) -> Option<u64> {
        let pids = self.tree();
        if pids.is_empty() {
            return None;
        }
        Some(pids.iter().filter_map(|&p| cpu_of(p)).sum())
    }

    /// Waits until the server has been idle (< 2 ms of CPU per 100 ms) or `max` passed.
    pub fn settle(&self, max: Duration) {
        let end = Instant::now() + max;
        let mut last = self.cpu_ns();
        std::thread::sleep(Duration::from_millis(100));
        while Instant::now() < end {
            let now = self.cpu_ns();
            match (last, now) {
                (Some(a), Some(b)) if b.saturating_sub(a) < 2_000_000 => return,
                (None, _) => {
                    std::thread::sleep(max.min(Duration::from_millis(300)));
                    return;
                }
                _ => {}
            }
            last = now;
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pgid = c.id() as libc::pid_t;
            // SAFETY: signals our own child's process group (it was created with
            // process_group(0), so its id is the child's pid).
            unsafe {
                libc::kill(-pgid, libc::SIGTERM);
            }
            let end = Instant::now() + Duration::from_secs(3);
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: as above; the group may already be gone, which is harmless.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
            let _ = c.wait();
        }
        if let Some(d) = self.dir.take() {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// `pid` and all its descendants (from /proc/*/stat parent links).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parent: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(pp) = stat_fields(p).and_then(|f| f.get(1).and_then(|s| s.parse().ok())) {
                parent.entry(pp).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while let Some(&p) = out.get(i) {
        if let Some(kids) = parent.get(&p) {
            out.extend(kids);
        }
        i += 1;
    }
    out
}

/// Fields of /proc/PID/stat after the command name: [state, ppid, ...].
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.get(s.rfind(')')? + 1..)?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// VmRSS in bytes.
pub fn rss_of(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vmrss(&s)
}

/// (Pss, Rss) in bytes from /proc/PID/smaps_rollup.
pub fn rollup_of(pid: u32) -> Option<(u64, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    parse_rollup(&s)
}

pub fn parse_rollup(s: &str) -> Option<(u64, u64)> {
    let kb = |key: &str| -> Option<u64> {
        let line = s.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    Some((kb("Pss:")? * 1024, kb("Rss:")? * 1024))
}

pub fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU time in ns: the sum of the threads' schedstat run times (exact), or utime+stime
/// clock ticks when schedstat is unavailable.
pub fn cpu_of(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/task")) {
        for e in rd.flatten() {
            let p = e.path().join("schedstat");
            if let Some(v) = fs::read_to_string(p).ok().and_then(|s| {
                s.split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<u64>().ok())
            }) {
                total += v;
                any = true;
            }
        }
    }
    if any {
        return Some(total);
    }
    let f = stat_fields(pid)?;
    // After the name: state(0) ppid(1) ... utime is field 14 overall, index 11 here.
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some((ut + st) * 1_000_000_000 / hz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_is_perl_override() {
        let c = override_conf(8088, 10010, "$CONFIG{OFFLINE_TIMEOUT} = 1;\n");
        assert!(c.starts_with("$CONFIG{WAIT_ADDR} = [ '127.0.0.1:8088' ];\n"));
        assert!(c.contains("$CONFIG{IN_ADDR} = [ '127.0.0.1:10010' ];\n"));
        assert!(c.contains("$CONFIG{VERBOSITY} = 0;\n$CONFIG{OFFLINE_TIMEOUT} = 1;\nreturn 1;\n"));
    }

    #[test]
    fn proc_readers_on_self() {
        let me = std::process::id();
        assert!(rss_of(me).unwrap() > 0);
        assert!(cpu_of(me).unwrap() > 0);
        assert!(process_tree(me).contains(&me));
        assert_eq!(
            parse_vmrss("Name: x\nVmRSS:\t  1234 kB\n"),
            Some(1234 * 1024)
        );
        assert_eq!(parse_vmrss("Name: x\n"), None);
        let (pss, rss) = rollup_of(me).unwrap();
        assert!(pss > 0 && rss >= pss);
        assert_eq!(
            parse_rollup("55d0-7ff [rollup]\nRss:   200 kB\nPss:   150 kB\nPss_Anon: 9 kB\n"),
            Some((150 * 1024, 200 * 1024))
        );
    }
}
