//! Runs of the real binary that are expected to end by themselves: failed starts. The
//! process runs on the base conf plus the test's text (as `Server`), with its stdout and
//! stderr in files of its temp dir; it is killed if it outlives the deadline (a start that
//! never fails loudly), which the test then sees as `status: None`.
//!
//! Data: `Exited { status, stdout, stderr, dir }`; the dir is removed on drop.
//! May use std and the sibling `server` module (the temp dir and conf).

use super::server::prepare;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a run left behind.
pub struct Exited {
    /// None: still running at the deadline (then killed).
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    dir: PathBuf,
}

impl Exited {
    /// The temp dir the conf and `@DIR@` point to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Exited {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- realplexor stdout ---\n{}\n--- realplexor stderr ---\n{}",
                self.stdout, self.stderr
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Runs `realplexor <args> <conf>` (`@DIR@` in `args` is the temp dir) and waits up to
/// `timeout` for it to exit.
pub fn run_to_exit(extra_conf: &str, args: &[&str], timeout: Duration) -> Exited {
    let (dir, conf) = prepare(extra_conf, &[]);
    let out = fs::File::create(dir.join("stdout")).expect("stdout file");
    let err = fs::File::create(dir.join("stderr")).expect("stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_realplexor"))
        .args(
            args.iter()
                .map(|a| a.replace("@DIR@", &dir.to_string_lossy())),
        )
        .arg(&conf)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn realplexor");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() >= deadline {
            // The supervisor's worker dies with it (parent-death signal).
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let read = |name: &str| fs::read_to_string(dir.join(name)).unwrap_or_default();
    Exited {
        status,
        stdout: read("stdout"),
        stderr: read("stderr"),
        dir,
    }
}
