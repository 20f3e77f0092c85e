//! Socket activation with the real `systemd-socket-activate`, and sd_notify readiness
//! received on a datagram socket the test owns.

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

/// Collects notification datagrams until `want` has been seen `times` times in all.
fn wait_notify_n(sock: &UnixDatagram, want: &str, times: usize, seen: &mut String) {
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while seen.matches(want).count() < times {
        assert!(
            std::time::Instant::now() < deadline,
            "no {want} x{times} in {seen:?}"
        );
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {want} (got {seen:?}): {e}"));
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

fn wait_notify(sock: &UnixDatagram, want: &str, seen: &mut String) {
    wait_notify_n(sock, want, 1, seen);
}

#[test]
fn inherits_tcp_and_unix_sockets_from_systemd_socket_activate() {
    if skip_without("systemd-socket-activate") {
        return;
    }
    let mut t = TestEnv::new();
    let port = free_port();
    let sock_path = t.root().join("run/ds.sock");
    let notify_path = t.root().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();

    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-l")
        .arg(&sock_path)
        .arg("--fdname=web:local")
        .arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify_path.display()));
    for (k, v) in &t.env {
        cmd.arg("-E").arg(format!("{k}={v}"));
    }
    cmd.arg(BIN).arg("--path").arg(&t.project).arg("serve");
    cmd.env_clear()
        .envs(t.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(t.root().join("activate.err")).unwrap());
    let pid = t.spawn(cmd);

    // The supervisor listens; doc-serve is not running until a client connects.
    wait_for(Duration::from_secs(10), "the socket", || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(drop)
    });
    assert!(!t.state_file("runtime.json").exists());
    let addr = format!("127.0.0.1:{port}");
    let health = get(&addr, "/health", &[]);
    assert_eq!(health.status, 200, "{health:?}");

    let mut seen = String::new();
    wait_notify(&notify, "READY=1", &mut seen);
    assert!(seen.contains("STATUS="), "{seen}");

    let rt = t.wait_runtime(Duration::from_secs(10));
    assert_eq!(rt["activation"], "systemd");
    assert_eq!(rt["port"], port);
    assert_eq!(
        rt["pid"], pid,
        "systemd-socket-activate execs doc-serve in its own PID"
    );
    assert_eq!(rt["socket_path"], sock_path.display().to_string());
    let listeners = rt["listeners"].as_array().unwrap();
    assert_eq!(listeners.len(), 2, "{rt}");
    assert_eq!(listeners[0]["name"], "web");
    assert_eq!(listeners[0]["address"], addr.as_str());
    assert_eq!(listeners[1]["name"], "local");
    assert_eq!(listeners[1]["kind"], "unix");

    // The Unix socket is served too, and needs no token: the file mode is the gate.
    let mut u = UnixStream::connect(&sock_path).unwrap();
    u.write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    u.read_to_end(&mut buf).unwrap();
    let status = parse_reply(&buf);
    assert_eq!(status.status, 200, "{status:?}");
    assert_eq!(status.json()["activation"], "systemd");

    signal(pid, Signal::SIGTERM);
    wait_notify(&notify, "STOPPING=1", &mut seen);
    assert_eq!(t.wait_child(pid, Duration::from_secs(10)), Some(0));
    assert!(!t.state_file("runtime.json").exists());
    assert!(
        sock_path.exists(),
        "an inherited socket must never be unlinked"
    );
}

#[test]
fn watchdog_is_pinged_when_asked() {
    if skip_without("systemd-socket-activate") {
        return;
    }
    let mut t = TestEnv::new();
    let port = free_port();
    let notify_path = t.root().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l").arg(format!("127.0.0.1:{port}"));
    cmd.arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify_path.display()));
    // 400 ms: pings every 200 ms.
    cmd.arg("-E").arg("WATCHDOG_USEC=400000");
    for (k, v) in &t.env {
        cmd.arg("-E").arg(format!("{k}={v}"));
    }
    cmd.arg(BIN).arg("--path").arg(&t.project).arg("serve");
    cmd.env_clear()
        .envs(t.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    let pid = t.spawn(cmd);
    wait_for(Duration::from_secs(10), "the socket", || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(drop)
    });
    assert_eq!(
        get(&format!("127.0.0.1:{port}"), "/health", &[]).status,
        200
    );
    let mut seen = String::new();
    wait_notify(&notify, "READY=1", &mut seen);
    let begun = std::time::Instant::now();
    wait_notify_n(&notify, "WATCHDOG=1", 4, &mut seen);
    assert!(
        begun.elapsed() < Duration::from_secs(5),
        "pings too slow: {:?}",
        begun.elapsed()
    );
    signal(pid, Signal::SIGTERM);
    assert_eq!(t.wait_child(pid, Duration::from_secs(10)), Some(0));
}
