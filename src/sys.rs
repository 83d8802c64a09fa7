//! Process-level libc glue: the open-files limit, the switch to SU_USER, signals, heap
//! trimming, and the socket calls std and mio do not offer (MSG_MORE, TCP_DEFER_ACCEPT,
//! an SO_REUSEPORT listener for WORKERS > 1).
//!
//! Uses: nothing internal.

use std::ffi::CString;

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the resulting soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct we own.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 0;
        }
        if rl.rlim_cur < rl.rlim_max {
            let want = libc::rlimit {
                rlim_cur: rl.rlim_max,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                rl.rlim_cur = rl.rlim_max;
            }
        }
        rl.rlim_cur
    }
}

/// The soft RLIMIT_NOFILE (u64::MAX when it cannot be read or is unlimited).
pub fn nofile_limit() -> u64 {
    // SAFETY: getrlimit only writes the struct we own.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return u64::MAX;
        }
        rl.rlim_cur
    }
}

/// How many descriptors this process has open (None when /proc cannot tell).
pub fn open_fds() -> Option<u64> {
    // The directory listing holds one descriptor of its own while it is read.
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(n.saturating_sub(1))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Switches group and user to `name` (after the ports are bound).
pub fn switch_user(name: &str) -> Result<(), String> {
    let cname = CString::new(name).map_err(|_| format!("User {name} is not found"))?;
    // SAFETY: getpwnam returns NULL or a pointer to static storage that we read at once;
    // setgroups/setgid/setuid take plain values.
    unsafe {
        let pw = libc::getpwnam(cname.as_ptr());
        if pw.is_null() {
            return Err(format!("User {name} is not found"));
        }
        let (uid, gid) = ((*pw).pw_uid, (*pw).pw_gid);
        if libc::setgroups(1, &gid) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
            return Err(format!(
                "Cannot switch to user {name}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// The signals the worker handles through its event loop.
pub const HANDLED: [libc::c_int; 3] = [libc::SIGHUP, libc::SIGINT, libc::SIGTERM];

/// A signalfd that receives SIGHUP, SIGINT and SIGTERM (blocked for normal delivery), so
/// signals arrive as readable events on the reactor's reserved token.
pub struct SignalFd {
    fd: libc::c_int,
}

impl SignalFd {
    pub fn new() -> std::io::Result<SignalFd> {
        // SAFETY: sigset operations on a zeroed set we own; sigprocmask and signalfd take
        // valid pointers. The process is single-threaded when this runs.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in HANDLED {
                libc::sigaddset(&mut set, s);
            }
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(SignalFd { fd })
        }
    }

    pub fn raw_fd(&self) -> libc::c_int {
        self.fd
    }

    /// The next pending signal number, if any.
    pub fn read(&self) -> Option<libc::c_int> {
        // SAFETY: signalfd_siginfo is plain data; read writes at most its size into it.
        unsafe {
            let mut info: libc::signalfd_siginfo = std::mem::zeroed();
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            let n = libc::read(
                self.fd,
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            );
            (n == size as isize).then_some(info.ssi_signo as libc::c_int)
        }
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe {
            libc::close(self.fd);
        }
    }
}

/// Asks the kernel to send SIGTERM to this process when its parent (the supervisor) dies,
/// so that a killed supervisor never leaves an orphan worker holding the ports.
pub fn die_with_parent(expected_parent: libc::pid_t) {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a plain signal number; getppid/kill have no
    // preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        // The parent may have died before prctl took effect.
        if libc::getppid() != expected_parent {
            libc::kill(libc::getpid(), libc::SIGTERM);
        }
    }
}

pub fn signal_name(sig: libc::c_int) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "signal",
    }
}

/// Resident set size of a process in bytes (VmRSS from /proc), if it exists.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Returns free heap pages to the kernel (glibc keeps them after a peak otherwise).
pub fn trim_heap() {
    // SAFETY: malloc_trim only walks glibc's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Gives back a slab's spare capacity after a peak: an empty slab is replaced (its vacant
/// entries would otherwise keep the whole allocation), a used one shrunk.
pub fn shrink_slab<T>(s: &mut slab::Slab<T>) {
    if s.is_empty() {
        *s = slab::Slab::new();
    } else {
        s.shrink_to_fit();
    }
}

/// `send(2)` on a socket; with `more`, MSG_MORE holds the bytes back so that the close that
/// follows a final reply sends them in the same segment as its FIN (one packet instead of
/// two per answered browser).
pub fn send(fd: std::os::fd::RawFd, buf: &[u8], more: bool) -> std::io::Result<usize> {
    let flags = libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: buf is a valid slice for its length; fd is a socket owned by the caller.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), flags) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// TCP_DEFER_ACCEPT on a listening socket: the kernel completes accept() only once data
/// has arrived (or, for a silent client, after about `secs` seconds of SYN-ACK retries).
pub fn defer_accept(fd: std::os::fd::RawFd, secs: libc::c_int) -> std::io::Result<()> {
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a value that lives across
    // the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A TCP listener on `addr` whose port other sockets of the same user may share
/// (SO_REUSEPORT, for WORKERS > 1: the kernel spreads new connections over them). Made as
/// std makes one (close-on-exec, SO_REUSEADDR), with SO_REUSEPORT set before bind(), and
/// listening with `backlog`.
pub fn reuseport_listener(
    addr: std::net::SocketAddr,
    backlog: libc::c_int,
) -> std::io::Result<std::net::TcpListener> {
    use std::os::fd::{AsRawFd, IntoRawFd};
    use std::os::fd::{FromRawFd, OwnedFd};
    let err = std::io::Error::last_os_error;
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket() takes plain values; the result is checked before use.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(err());
    }
    // SAFETY: fd was just created and is owned by nothing else; OwnedFd closes it on error.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: setsockopt reads size_of::<c_int>() bytes from `one`, alive for the call.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(err());
        }
    }
    // SAFETY: an all-zero sockaddr_storage is a valid value; it is filled in below.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        std::net::SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `ss` holds a sockaddr of `len` bytes for the socket's family.
    let r = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&ss as *const libc::sockaddr_storage).cast(),
            len as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(err());
    }
    // SAFETY: listen on a bound socket we own.
    if unsafe { libc::listen(sock.as_raw_fd(), backlog) } != 0 {
        return Err(err());
    }
    // SAFETY: the descriptor is a listening TCP socket whose ownership moves to the listener.
    Ok(unsafe { std::net::TcpListener::from_raw_fd(sock.into_raw_fd()) })
}
