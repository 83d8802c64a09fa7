//! The listening and connected sockets of both lines, TCP or Unix stream sockets, behind
//! one type each so that the reactor and `conn` read, write, shut down and register them
//! the same way.
//!
//! Data: `Listen::{Tcp, Unix}`, and `Stream`, just the connected socket's descriptor. A
//! Unix listener keeps its path and the socket file's (device, inode), and removes the
//! file when dropped (a clean stop, or a reload without that address) if the file is still
//! the one it created.
//! `bind_unix` handles `unix:/absolute/path` listen addresses: a stale socket file
//! (nothing accepts on it) is replaced, one where a server listens is "address in use",
//! any other kind of file is left alone (an error); the new file gets mode 0666 so that a
//! proxy running as another user can connect (access is controlled by the directory).
//! Uses: conn (`Peer`), mio, libc.

use crate::conn::Peer;
use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::fs;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;

/// The prefix of a Unix socket listen address: `unix:/run/realplexor/wait.sock`.
pub const UNIX_PREFIX: &str = "unix:";

/// Mode of a socket file this server creates: any local user may connect (as anyone may
/// connect to a loopback TCP port); restrict access with the directory's mode and group.
pub const SOCKET_MODE: u32 = 0o666;

/// The original's listen backlog (the kernel caps it at net.core.somaxconn).
const BACKLOG: libc::c_int = 50_000;

/// A listening socket of WAIT_ADDR or IN_ADDR.
pub enum Listen {
    Tcp(TcpListener),
    Unix(UnixListen),
}

/// A Unix listener and the socket file it owns.
pub struct UnixListen {
    sock: UnixListener,
    /// The path, as written after `unix:`; shared with every accepted connection's `Peer`.
    path: Arc<String>,
    /// (st_dev, st_ino) of the file created at bind.
    file: (u64, u64),
}

/// An accepted connection: a connected stream socket of either family. Every call made on
/// it (read, send, shutdown, epoll registration) is the same syscall for TCP and Unix
/// sockets, so it holds just the descriptor: no tag, and none of mio's debug-build
/// bookkeeping, keeping `Conn` small (its family shows in the connection's `Peer`).
pub struct Stream(OwnedFd);

/// Binds `unix:<path>` (`addr` is the whole entry, used in error messages as
/// `<addr>: <why>`, which main.rs prefixes with the config key).
pub fn bind_unix(addr: &str) -> Result<UnixListen, String> {
    let path = addr.strip_prefix(UNIX_PREFIX).unwrap_or(addr);
    let fail = |why: &dyn std::fmt::Display| format!("{addr}: {why}");
    if !path.starts_with('/') || path.contains('\0') {
        return Err(fail(&"want an absolute path after unix:"));
    }
    clear_stale(path).map_err(|e| fail(&e))?;
    let std = std::os::unix::net::UnixListener::bind(path).map_err(|e| fail(&e))?;
    // From here on a failure removes the file again (it is ours, and nothing listens).
    let undo = |e: io::Error| {
        let _ = fs::remove_file(path);
        fail(&e)
    };
    std.set_nonblocking(true).map_err(undo)?;
    // SAFETY: the fd is a valid listening socket owned by `std`; listen() again only
    // changes its backlog.
    unsafe {
        libc::listen(std.as_raw_fd(), BACKLOG);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE)).map_err(undo)?;
    let meta = fs::symlink_metadata(path).map_err(undo)?;
    Ok(UnixListen {
        sock: UnixListener::from_std(std),
        path: Arc::new(path.to_string()),
        file: (meta.dev(), meta.ino()),
    })
}

/// Makes room at `path`: nothing there, or a socket file nobody accepts on (removed).
/// A live socket is "address in use"; any other file is refused rather than deleted.
fn clear_stale(path: &str) -> Result<(), String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.file_type().is_socket() {
        return Err("exists and is not a socket (not replaced)".into());
    }
    // mio connects without blocking: a listener whose queue is full says EAGAIN instead
    // of holding the start.
    match UnixStream::connect(path) {
        Ok(_) => Err(in_use()),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(in_use()),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            log::info!("{UNIX_PREFIX}{path}: replacing a stale socket file");
            match fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

fn in_use() -> String {
    "Address already in use (a server is listening on this socket file)".into()
}

impl Drop for UnixListen {
    fn drop(&mut self) {
        // Only the file this listener created: another server may have replaced it.
        let path = self.path.as_str();
        match fs::symlink_metadata(path) {
            Ok(m) if (m.dev(), m.ino()) == self.file => {
                if let Err(e) = fs::remove_file(path) {
                    log::warn!("{UNIX_PREFIX}{path}: cannot remove the socket file: {e}");
                }
            }
            _ => log::debug!("{UNIX_PREFIX}{path}: socket file gone or replaced; left alone"),
        }
    }
}

impl Listen {
    /// Accepts one connection; the peer for log lines (a Unix peer is named by the
    /// listener's path: clients of a listening socket are usually unnamed).
    pub fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listen::Tcp(l) => l.accept().map(|(s, a)| (Stream::from(s), Peer::from(a))),
            Listen::Unix(l) => l
                .sock
                .accept()
                .map(|(s, _)| (Stream::from(s), Peer::Unix(Arc::clone(&l.path)))),
        }
    }

    /// The bound TCP address (an error for a Unix socket).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listen::Tcp(l) => l.local_addr(),
            Listen::Unix(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    /// What the `listening` log line shows: the bound `ip:port`, or `unix:/path`.
    pub fn describe(&self) -> io::Result<String> {
        match self {
            Listen::Tcp(l) => l.local_addr().map(|a| a.to_string()),
            Listen::Unix(l) => Ok(format!("{UNIX_PREFIX}{}", l.path)),
        }
    }

    /// The socket file of a Unix listener.
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            Listen::Tcp(_) => None,
            Listen::Unix(l) => Some(PathBuf::from(l.path.as_str())),
        }
    }
}

impl Stream {
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let how = match how {
            Shutdown::Read => libc::SHUT_RD,
            Shutdown::Write => libc::SHUT_WR,
            Shutdown::Both => libc::SHUT_RDWR,
        };
        // SAFETY: shutdown(2) on a socket this value owns.
        cvt(unsafe { libc::shutdown(self.0.as_raw_fd(), how) } as isize).map(drop)
    }

    /// TCP_NODELAY; a Unix socket has no Nagle delay (its EOPNOTSUPP is success).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        let v = libc::c_int::from(on);
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a value that lives
        // across the call; the fd is a socket this value owns.
        let r = unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        match cvt(r as isize) {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
            other => other.map(drop),
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream(OwnedFd::from(s))
    }
}

impl From<UnixStream> for Stream {
    fn from(s: UnixStream) -> Stream {
        Stream(OwnedFd::from(s))
    }
}

/// A syscall's return value: negative is the thread's errno.
fn cvt(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is a valid, writable slice for its length; the fd is owned.
        cvt(unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).register(r, t, i)
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).reregister(r, t, i)
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        SourceFd(&self.0.as_raw_fd()).deregister(r)
    }
}

impl Source for Listen {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listen::Tcp(l) => l.register(r, t, i),
            Listen::Unix(l) => l.sock.register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listen::Tcp(l) => l.reregister(r, t, i),
            Listen::Unix(l) => l.sock.reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Listen::Tcp(l) => l.deregister(r),
            Listen::Unix(l) => l.sock.deregister(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> String {
        let dir = std::env::temp_dir().join(format!("rp-net-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        dir.join("s.sock").to_string_lossy().into_owned()
    }

    #[test]
    fn binds_replaces_stale_refuses_live_and_removes_on_drop() {
        let path = temp_path("cycle");
        let addr = format!("unix:{path}");
        let l = bind_unix(&addr).expect("bind");
        let mode = fs::metadata(&path).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        let err = bind_unix(&addr).err().expect("second bind");
        assert!(
            err.starts_with(&format!("{addr}: Address already in use")),
            "{err}"
        );
        drop(l);
        assert!(!std::path::Path::new(&path).exists(), "file left behind");
        // A stale file: bound, then the listener closed without removing it.
        drop(std::os::unix::net::UnixListener::bind(&path).expect("stale"));
        assert!(std::path::Path::new(&path).exists());
        let l = bind_unix(&addr).expect("stale file replaced");
        drop(l);
        let _ = fs::remove_dir_all(std::path::Path::new(&path).parent().unwrap_or("/".as_ref()));
    }

    #[test]
    fn refuses_relative_paths_and_other_files() {
        assert!(bind_unix("unix:relative.sock")
            .err()
            .is_some_and(|e| e.contains("absolute")));
        let path = temp_path("plain");
        fs::write(&path, b"keep me").expect("plain file");
        let err = bind_unix(&format!("unix:{path}")).err().expect("refused");
        assert!(err.contains("not a socket"), "{err}");
        assert_eq!(fs::read(&path).expect("still there"), b"keep me");
        let _ = fs::remove_dir_all(std::path::Path::new(&path).parent().unwrap_or("/".as_ref()));
    }
}
