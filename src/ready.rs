//! Startup readiness: how the first worker tells whoever started it that it is listening,
//! or why it could not start.
//!
//! * Supervisor to its first worker: a pipe. The supervisor keeps the read end and passes
//!   the write end's descriptor number in `READY_ENV`; the worker writes `+` once it is
//!   listening (and has switched user), or `-` and its error text before it exits. EOF
//!   without either means the worker died. Later workers get no pipe.
//! * systemd (`Type=notify`): `READY=1` to `$NOTIFY_SOCKET` at the same point, from the
//!   `--foreground` worker, or from the supervisor when its first worker reported.
//!
//! Structure: `Pipe` (the supervisor's read end), `Notifier` (the worker's side).
//! Uses: libc only.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Environment variable naming the readiness pipe's write end in the first worker.
pub const READY_ENV: &str = "REALPLEXOR_READY_FD";

/// What the first worker reported.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// It is listening.
    Ready,
    /// It could not start: its error text (empty if it died without one).
    Failed(String),
    /// Nothing yet.
    Pending,
}

/// The supervisor's end of the readiness pipe, plus the write end until the worker is
/// spawned.
pub struct Pipe {
    read: File,
    write: Option<OwnedFd>,
    got: Vec<u8>,
}

impl Pipe {
    /// A pipe whose read end is close-on-exec and whose write end is inherited by the next
    /// spawned process (the supervisor spawns from one thread only).
    pub fn new() -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two descriptors into the array on success.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both descriptors were just created and are owned by nobody else.
        let (read, write) = unsafe { (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on a descriptor we own; clearing FD_CLOEXEC lets the worker inherit it.
        if unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETFD, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe {
            read,
            write: Some(write),
            got: Vec::new(),
        })
    }

    /// The write end's number, for `READY_ENV`.
    pub fn write_fd(&self) -> Option<RawFd> {
        self.write.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Closes the supervisor's copy of the write end (after the spawn), so that the
    /// worker's exit reads as EOF.
    pub fn close_write(&mut self) {
        self.write = None;
    }

    /// Waits up to `step` for the worker's report.
    pub fn poll(&mut self, step: Duration) -> Report {
        let mut pfd = libc::pollfd {
            fd: self.read.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(step.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n <= 0 {
            return Report::Pending;
        }
        let mut buf = [0u8; 4096];
        match self.read.read(&mut buf) {
            Ok(0) => self.at_eof(),
            Ok(k) => {
                self.got.extend_from_slice(&buf[..k]);
                if self.got.first() == Some(&b'+') {
                    Report::Ready
                } else {
                    Report::Pending
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Report::Pending,
            Err(_) => self.at_eof(),
        }
    }

    /// The report of a worker known to have exited: what it wrote, without waiting for an
    /// EOF that a leaked copy of the write end could hold back.
    pub fn finish(&mut self) -> Report {
        for _ in 0..64 {
            match self.poll(Duration::ZERO) {
                Report::Pending => {}
                report => return report,
            }
        }
        self.at_eof()
    }

    fn at_eof(&self) -> Report {
        match self.got.split_first() {
            Some((b'+', _)) => Report::Ready,
            Some((b'-', msg)) => Report::Failed(String::from_utf8_lossy(msg).trim().to_string()),
            _ => Report::Failed(String::new()),
        }
    }
}

/// The worker's side: the supervisor's pipe (first worker only) and systemd's socket.
#[derive(Default)]
pub struct Notifier {
    pipe: Option<File>,
}

impl Notifier {
    /// Takes the pipe named by `READY_ENV`, if that is an open descriptor.
    pub fn from_env() -> Notifier {
        let fd = std::env::var(READY_ENV)
            .ok()
            .and_then(|v| v.parse::<RawFd>().ok())
            .filter(|fd| *fd > 2)
            // SAFETY: F_GETFD only queries whether the descriptor is open.
            .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } != -1);
        Notifier {
            // SAFETY: the supervisor created this descriptor for us alone; nothing else in
            // this process refers to it.
            pipe: fd.map(|fd| unsafe { File::from_raw_fd(fd) }),
        }
    }

    /// Whether a supervisor waits for this worker's report (it then prints the error).
    pub fn reports_to_supervisor(&self) -> bool {
        self.pipe.is_some()
    }

    /// Listening: tells the supervisor and systemd.
    pub fn ready(&mut self) {
        if let Some(mut p) = self.pipe.take() {
            let _ = p.write_all(b"+");
        }
        notify_systemd("READY=1");
    }

    /// Could not start: hands `msg` to the supervisor. Returns false if there is none (the
    /// caller then prints it).
    pub fn failed(&mut self, msg: &str) -> bool {
        match self.pipe.take() {
            Some(mut p) => {
                let _ = p.write_all(format!("-{msg}").as_bytes());
                true
            }
            None => false,
        }
    }
}

/// Sends `state` to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace), if
/// systemd set one. The supervisor calls it itself and hides the socket from its workers.
pub fn notify_systemd(state: &str) {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(&path),
    };
    if let (Ok(addr), Ok(sock)) = (addr, UnixDatagram::unbound()) {
        let _ = sock.send_to_addr(state.as_bytes(), &addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_byte_decides() {
        for (sent, want) in [
            (&b"+"[..], Report::Ready),
            (b"-bind: in use\n", Report::Failed("bind: in use".into())),
            (b"", Report::Failed(String::new())),
        ] {
            let mut p = Pipe::new().expect("pipe");
            let fd = p.write_fd().expect("write end");
            // SAFETY: a dup of our own write end, written and closed here.
            let mut w = unsafe { File::from_raw_fd(libc::dup(fd)) };
            p.close_write();
            w.write_all(sent).expect("write");
            drop(w);
            let mut got = Report::Pending;
            for _ in 0..10 {
                got = p.poll(Duration::from_millis(100));
                if got != Report::Pending {
                    break;
                }
            }
            assert_eq!(got, want, "{sent:?}");
        }
    }
}
