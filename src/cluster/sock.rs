//! The socket under a Redis link: TCP or Unix, connected without blocking.
//!
//! Job: start a non-blocking connect to an `addr::Endpoint`, tell when it has completed
//! (or why it failed), and give the link one type to read, write and register with mio.
//!
//! Data shape: `Sock::Tcp(mio::net::TcpStream)` or `Sock::Unix(mio::net::UnixStream)`;
//! every method dispatches to the stream inside. A host name is resolved with the system
//! resolver (which blocks; IP literals skip it), and successive attempts cycle through
//! its addresses, so a name with an IPv6 and an IPv4 address reaches whichever listens.
//! Uses: `cluster::addr`; `mio`.

use super::addr::Endpoint;
use mio::event::Source;
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

pub enum Sock {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

/// The address for attempt `n`: IP literals directly, names through the system resolver,
/// cycling through its answers from one attempt to the next.
fn resolve(host: &str, port: u16, n: u64) -> io::Result<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let len = u64::try_from(addrs.len()).unwrap_or(1).max(1);
    usize::try_from(n % len)
        .ok()
        .and_then(|i| addrs.get(i).copied())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "host name has no address"))
}

impl Sock {
    /// Starts a non-blocking connect to `endpoint`; attempt `n` picks among a host name's
    /// addresses.
    pub fn open(endpoint: &Endpoint, n: u64) -> io::Result<Sock> {
        match endpoint {
            Endpoint::Tcp { host, port } => {
                let s = mio::net::TcpStream::connect(resolve(host, *port, n)?)?;
                // Small pipelined commands should not wait for Nagle.
                let _ = s.set_nodelay(true);
                Ok(Sock::Tcp(s))
            }
            Endpoint::Unix(path) => mio::net::UnixStream::connect(path).map(Sock::Unix),
        }
    }

    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Sock::Tcp(s) => s.take_error(),
            Sock::Unix(s) => s.take_error(),
        }
    }

    /// Whether a non-blocking connect has completed.
    pub fn connected(&self) -> io::Result<bool> {
        let peer = match self {
            Sock::Tcp(s) => s.peer_addr().map(|_| ()),
            Sock::Unix(s) => s.peer_addr().map(|_| ()),
        };
        match peer {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Sock {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.register(r, t, i),
            Sock::Unix(s) => s.register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.reregister(r, t, i),
            Sock::Unix(s) => s.reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.deregister(r),
            Sock::Unix(s) => s.deregister(r),
        }
    }
}
