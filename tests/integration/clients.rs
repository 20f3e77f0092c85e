//! Client commands find the one resident: `query` and `index` delegate to it and run
//! standalone otherwise, with the same output.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::search::with_fixtures;
use crate::util::*;

/// The JSON output without its timing fields.
fn untimed(out: &str) -> String {
    out.lines()
        .filter(|l| !l.trim_start().starts_with("\"took_ms\""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn served(t: &TestEnv) -> u64 {
    let rt = t.runtime();
    let token = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    get(&addr_of(&rt), "/status", &[&token]).json()["requests"]["served"]
        .as_u64()
        .unwrap()
}

#[test]
fn query_and_index_delegate_with_the_same_output() {
    let t = with_fixtures();
    t.ok(&["index"]);
    let args = ["query", "--json", "--limit", "3", "installer platform"];
    let standalone = t.ok(&args);
    let text = t.ok(&["query", "installer"]);
    let none = t.expect(&["query", "--json", "zzzqqq"], 1);

    t.ok(&["start"]);
    let before = served(&t);
    let delegated = t.ok(&args);
    // /status itself counts once; the query made at least /query (and a health check).
    assert!(
        served(&t) >= before + 2,
        "the query did not reach the resident"
    );
    assert_eq!(untimed(&delegated), untimed(&standalone));
    assert!(standalone.contains("docs/guide/install.md"), "{standalone}");
    assert_eq!(t.ok(&["query", "installer"]), text);
    assert_eq!(
        untimed(&t.expect(&["query", "--json", "zzzqqq"], 1)),
        untimed(&none)
    );
    // A query the engine rejects is the same usage error both ways.
    let err = t.expect(&["query", "--", "-only"], 2);
    assert!(err.is_empty());

    let v = t.json(&["index", "--json"]);
    assert_eq!(v["summary"]["unchanged"], 5, "{v}");
    assert_eq!(v["files"], 5, "{v}");
    std::fs::write(
        t.project.join("docs/new.md"),
        "# New\n\nfreshly added words\n",
    )
    .unwrap();
    let v = t.json(&["index", "--json"]);
    assert_eq!(v["summary"]["added"], 1, "{v}");
    assert_eq!(v["files"], 6, "{v}");
    t.ok(&["stop"]);
}

#[test]
fn standalone_when_nothing_runs_and_autostart_when_asked() {
    let mut t = with_fixtures();
    let v = t.json(&["query", "--json", "installer"]);
    assert_eq!(v["hits"][0]["path"], "docs/guide/install.md", "{v}");
    assert!(
        !t.state_file("runtime.json").exists(),
        "a query without autostart started a resident"
    );

    t.set("DOC_SERVE_AUTOSTART", "true");
    let v = t.json(&["query", "--json", "installer"]);
    assert_eq!(v["hits"][0]["path"], "docs/guide/install.md", "{v}");
    let rt = t.wait_runtime(std::time::Duration::from_secs(5));
    let pid = rt["pid"].as_u64().unwrap() as u32;
    assert!(alive(pid));
    // The next query uses it rather than starting another.
    t.json(&["query", "--json", "installer"]);
    assert_eq!(t.runtime()["pid"], rt["pid"]);

    // The resident dies without cleaning up: the next query still answers (here by
    // starting a new resident), and the stale files are gone.
    signal(pid, Signal::SIGKILL);
    // Until its last thread is gone its lock is held (a query meanwhile waits for it).
    wait_for(
        std::time::Duration::from_secs(5),
        "the resident to die",
        || (t.json_code(&["status", "--json"], 1)["state"] == "stopped").then_some(()),
    );
    t.set("DOC_SERVE_LOG", "info");
    let out = t.run(&["query", "--json", "installer"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hits"][0]["path"], "docs/guide/install.md", "{v}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("removed stale"), "{log}");
    assert_ne!(t.runtime()["pid"], rt["pid"], "{log}");

    t.set("DOC_SERVE_AUTOSTART", "false");
    t.ok(&["stop"]);
    t.set("DOC_SERVE_AUTOSTART", "maybe");
    let err = String::from_utf8(t.run(&["query", "installer"]).stderr).unwrap();
    assert!(err.contains("DOC_SERVE_AUTOSTART"), "{err}");
}
