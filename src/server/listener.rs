//! Listening sockets: inherited from a supervisor, or bound by us.
//!
//! Inherited descriptors must be taken before the tokio runtime starts: listenfd reads
//! and removes LISTEN_PID/LISTEN_FDS from the environment, which is only sound while the
//! process has one thread. listenfd sets close-on-exec but not O_NONBLOCK, which tokio
//! needs; a wrong-type take leaves the fd in place, so TCP is tried before Unix.
//! LISTEN_FDNAMES (`--fdname`, `FileDescriptorName=`) is parsed here: listenfd ignores it.
//! We never unlink or re-bind a socket the supervisor owns; dropping our descriptor
//! leaves the supervisor's copy listening.
//!
//! Without LISTEN_FDS, launchd is asked for the agent's `Sockets` entry "doc-serve"
//! (`launch_activate_socket`, macOS only; elsewhere the answer is always none). Its
//! descriptors carry no type, so each one is sorted by SO_TYPE and its address family.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use crate::config::Config;
use crate::discovery::runtime::{Activation, ListenerInfo};
use crate::error::{Error, Result};
use crate::supervisor::launchd;

#[derive(Debug)]
pub enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

#[derive(Debug)]
pub struct Listener {
    pub socket: Socket,
    /// The supervisor's name for it (LISTEN_FDNAMES), if any.
    pub name: Option<String>,
}

/// The sockets a resident serves, and who made them.
#[derive(Debug)]
pub struct Listeners {
    pub list: Vec<Listener>,
    pub activation: Activation,
}

impl Listeners {
    /// Takes sockets passed by systemd (LISTEN_FDS) or launchd, or `None` when there
    /// are none.
    pub fn inherited() -> Result<Option<Listeners>> {
        let mut fds = listenfd::ListenFd::from_env();
        if fds.len() == 0 {
            return Listeners::from_launchd();
        }
        let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
            .map(|v| v.split(':').map(String::from).collect())
            .unwrap_or_default();
        let mut list = Vec::new();
        for index in 0..fds.len() {
            let ctx = |e| Error::io(format!("inherited socket {index} (fd {})", 3 + index), e);
            let socket = if let Ok(Some(tcp)) = fds.take_tcp_listener(index) {
                tcp.set_nonblocking(true).map_err(ctx)?;
                Socket::Tcp(tcp)
            } else if let Some(unix) = fds.take_unix_listener(index).map_err(ctx)? {
                unix.set_nonblocking(true).map_err(ctx)?;
                Socket::Unix(unix)
            } else {
                continue;
            };
            let name = names
                .get(index)
                .filter(|n| !n.is_empty() && *n != "unknown")
                .cloned();
            list.push(Listener { socket, name });
        }
        if list.is_empty() {
            return Err(Error::Setting {
                name: "LISTEN_FDS".into(),
                message: "no inherited descriptor is a listening TCP or Unix stream socket".into(),
            });
        }
        Ok(Some(Listeners {
            list,
            activation: Activation::Systemd,
        }))
    }

    /// Takes the sockets launchd bound for this job, or `None` when launchd did not
    /// start us (always `None` off macOS).
    fn from_launchd() -> Result<Option<Listeners>> {
        let Some(fds) = launchd::activate_sockets(launchd::SOCKET_NAME).map_err(|e| {
            Error::io(
                "cannot take the sockets launchd holds (launch_activate_socket)",
                e,
            )
        })?
        else {
            return Ok(None);
        };
        // SAFETY: launch_activate_socket hands each descriptor to us, once; owning them
        // at once closes the rest if one of them fails below.
        let fds: Vec<OwnedFd> = fds
            .into_iter()
            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
            .collect();
        let mut list = Vec::new();
        for fd in fds {
            if let Some(socket) = socket_from_fd(fd)? {
                list.push(Listener {
                    socket,
                    name: Some(launchd::SOCKET_NAME.into()),
                });
            }
        }
        if list.is_empty() {
            return Err(Error::Setting {
                name: "launchd Sockets".into(),
                message: format!(
                    "no socket under {:?} is a TCP or Unix stream socket",
                    launchd::SOCKET_NAME
                ),
            });
        }
        Ok(Some(Listeners {
            list,
            activation: Activation::Launchd,
        }))
    }

    /// Binds `bind_host:port` from the configuration.
    pub fn bind(config: &Config) -> Result<Listeners> {
        let ip: IpAddr = if config.bind_host == "localhost" {
            Ipv4Addr::LOCALHOST.into()
        } else {
            config.bind_host.parse().map_err(|_| Error::Setting {
                name: "bind_host".into(),
                message: format!("{:?} is not an IP address", config.bind_host),
            })?
        };
        let addr = SocketAddr::new(ip, config.port);
        let tcp = TcpListener::bind(addr).map_err(|e| {
            let what = if e.kind() == io::ErrorKind::AddrInUse {
                let owner = crate::process::tcp_listener_owner(addr.port())
                    .unwrap_or_else(|| "another program (not one this user can see)".into());
                format!(
                    "cannot listen on {addr}: port {} is already in use by {owner}",
                    addr.port()
                )
            } else {
                format!("cannot listen on {addr}")
            };
            Error::io(what, e)
        })?;
        tcp.set_nonblocking(true)
            .map_err(|e| Error::io("cannot make the listener non-blocking", e))?;
        Ok(Listeners {
            list: vec![Listener {
                socket: Socket::Tcp(tcp),
                name: None,
            }],
            activation: Activation::SelfBound,
        })
    }

    /// The first TCP address, which becomes runtime.json's base_url.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.list.iter().find_map(|l| match &l.socket {
            Socket::Tcp(t) => t.local_addr().ok(),
            Socket::Unix(_) => None,
        })
    }

    /// The first Unix socket path.
    pub fn unix_path(&self) -> Option<PathBuf> {
        self.list.iter().find_map(|l| match &l.socket {
            Socket::Unix(u) => u.local_addr().ok()?.as_pathname().map(PathBuf::from),
            Socket::Tcp(_) => None,
        })
    }

    pub fn info(&self) -> Vec<ListenerInfo> {
        self.list
            .iter()
            .map(|l| {
                let (kind, address) = match &l.socket {
                    Socket::Tcp(t) => (
                        "tcp",
                        t.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                    ),
                    Socket::Unix(u) => (
                        "unix",
                        u.local_addr()
                            .ok()
                            .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                            .unwrap_or_else(|| "(unnamed)".into()),
                    ),
                };
                ListenerInfo {
                    kind: kind.into(),
                    address,
                    name: l.name.clone(),
                }
            })
            .collect()
    }
}

/// A listening descriptor as a TCP or Unix listener, by its type and address family:
/// non-blocking for tokio and close-on-exec like listenfd's. `None` (and the descriptor
/// closed) for anything that is not a stream socket of either kind.
fn socket_from_fd(fd: OwnedFd) -> Result<Option<Socket>> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    use nix::sys::socket::{
        AddressFamily, SockType, SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt,
    };

    let raw = fd.as_raw_fd();
    let ctx = |e: nix::Error| Error::io(format!("inherited socket (fd {raw})"), e.into());
    if getsockopt(&fd, sockopt::SockType).map_err(ctx)? != SockType::Stream {
        return Ok(None);
    }
    let family = getsockname::<SockaddrStorage>(raw).map_err(ctx)?.family();
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(ctx)?;
    let io_ctx = |e| Error::io(format!("inherited socket (fd {raw})"), e);
    let socket = match family {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {
            let tcp = TcpListener::from(fd);
            tcp.set_nonblocking(true).map_err(io_ctx)?;
            Socket::Tcp(tcp)
        }
        Some(AddressFamily::Unix) => {
            let unix = UnixListener::from(fd);
            unix.set_nonblocking(true).map_err(io_ctx)?;
            Socket::Unix(unix)
        }
        _ => return Ok(None),
    };
    Ok(Some(socket))
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;

    /// What launchd hands over: bare descriptors, sorted here by kind.
    #[test]
    fn launchd_fds_are_sorted_by_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let unix = UnixListener::bind(&path).unwrap();
        match socket_from_fd(OwnedFd::from(tcp)).unwrap() {
            Some(Socket::Tcp(t)) => assert_eq!(t.local_addr().unwrap(), addr),
            other => panic!("{other:?}"),
        }
        match socket_from_fd(OwnedFd::from(unix)).unwrap() {
            Some(Socket::Unix(u)) => {
                assert_eq!(u.local_addr().unwrap().as_pathname(), Some(path.as_path()));
                // Non-blocking, as tokio needs.
                let err = u.accept().unwrap_err();
                assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
            }
            other => panic!("{other:?}"),
        }
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(socket_from_fd(OwnedFd::from(udp)).unwrap().is_none());
    }

    #[cfg(not(target_os = "macos"))]
    #[test]
    fn launchd_gives_nothing_off_macos() {
        assert!(Listeners::from_launchd().unwrap().is_none());
    }
}
