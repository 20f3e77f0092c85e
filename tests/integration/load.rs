//! Load: 64 keep-alive connections of distinct /query requests against a resident, with
//! slow clients holding connections meanwhile: zero errors, memory bounded, p99 printed.
//!
//! Bounded by default (5 s); `DOC_SERVE_TEST_LOAD_SECS=30` is the long run whose figures
//! RELIABILITY.md quotes. wrk is the load generator (CI installs it).

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::util::*;

fn vm_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

#[test]
fn sixty_four_connections_and_slow_clients_without_errors() {
    if skip_without("wrk") {
        return;
    }
    let secs: u64 = std::env::var("DOC_SERVE_TEST_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_REQUEST_TIMEOUT_SECONDS", "2");
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let words = [
        "error", "handling", "trait", "lifetime", "closure", "iterator", "thread", "async",
        "macro", "module", "cargo", "test", "string", "vector", "pattern", "match",
    ];
    for i in 0..200 {
        let body: Vec<String> = (0..40)
            .map(|j| {
                format!(
                    "{} {}",
                    words[(i + j) % words.len()],
                    words[(i * j + 3) % 16]
                )
            })
            .collect();
        std::fs::write(
            docs.join(format!("doc{i}.md")),
            format!(
                "# Doc {i}\n\n{}\n\n## Part\n\n{}\n",
                body.join(" "),
                body.join(". ")
            ),
        )
        .unwrap();
    }
    let pid = t.spawn_serve(&[]);
    let rt = t.wait_runtime(Duration::from_secs(15));
    let addr = addr_of(&rt);
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    wait_for(Duration::from_secs(30), "the first index", || {
        let v = get(&addr, "/status", &[&auth]).json();
        (v["index"]["indexing"] == false && v["index"]["files"] == 200).then_some(())
    });
    let queries = t.root().join("queries.txt");
    let list: Vec<String> = words
        .iter()
        .enumerate()
        .flat_map(|(i, a)| words[i + 1..].iter().map(move |b| format!("{a}+{b}")))
        .collect();
    std::fs::write(&queries, list.join("\n") + "\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let idle = vm_kib(pid, "VmRSS:");

    // Slow clients: headers that never finish, on connections of their own.
    let mut slow: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /health HTTP/1.1\r\nHost: loc").unwrap();
            s
        })
        .collect();
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/lib");
    let out = Command::new("wrk")
        .args([
            "-c64",
            "-t2",
            &format!("-d{secs}s"),
            "--latency",
            "-H",
            &auth,
            "-s",
        ])
        .arg(lib.join("queries.lua"))
        .arg(format!("http://{addr}"))
        .env("WRK_PCTL", lib.join("percentiles.lua"))
        .env("WRK_QUERIES", &queries)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "wrk: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!report.contains("Non-2xx"), "errors under load:\n{report}");
    assert!(
        !report.contains("Socket errors"),
        "errors under load:\n{report}"
    );
    let line = |key: &str| {
        report
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let requests: u64 = report
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(requests > 64, "{report}");

    // The slow clients were cut off; the resident answers, its memory stayed bounded.
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        assert!(
            std::io::Read::read_to_end(s, &mut buf).is_ok(),
            "a slow client was never cut off"
        );
    }
    assert_eq!(get(&addr, "/health", &[]).status, 200);
    let (after, peak) = (vm_kib(pid, "VmRSS:"), vm_kib(pid, "VmHWM:"));
    eprintln!(
        "load: {secs} s, 64 connections, 16 slow clients: {requests} requests, {}, {}, {}; \
         VmRSS {} MiB idle, {} MiB after, VmHWM {} MiB",
        line("Requests/sec"),
        line("50%"),
        line("99%"),
        idle / 1024,
        after / 1024,
        peak / 1024
    );
    assert!(
        peak < idle + 128 * 1024,
        "VmHWM {peak} KiB under load against {idle} KiB idle"
    );
    assert!(alive(pid));
}
