//! The shared daemon: many projects in one process, isolated, capped, durable.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::*;

const WAIT: Duration = Duration::from_secs(60);

/// `~/.doc-serve` of the test's HOME.
fn home_dir(t: &TestEnv) -> PathBuf {
    t.root().join("home/.doc-serve")
}

pub fn write_shared_config(t: &TestEnv, config: Value) {
    let dir = home_dir(t);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("shared_config.json"), config.to_string()).unwrap();
}

/// Starts `serve --shared` and waits for its runtime.json; (pid, addr, token).
pub fn start_daemon(t: &mut TestEnv) -> (u32, String, String) {
    let file = home_dir(t).join("runtime.json");
    let _ = std::fs::remove_file(&file);
    let pid = t.spawn_serve(&["--shared"]);
    let rt: Value = wait_for(WAIT, "the daemon's runtime.json", || {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).ok()?).ok()?;
        (v["pid"] == pid).then_some(v)
    });
    assert_eq!(rt["mode"], "shared");
    (pid, addr_of(&rt), rt["token"].as_str().unwrap().to_owned())
}

#[derive(Clone)]
struct Daemon {
    addr: String,
    auth: String,
}

impl Daemon {
    fn new(addr: String, token: &str) -> Daemon {
        Daemon {
            addr,
            auth: format!("Authorization: Bearer {token}"),
        }
    }

    fn get(&self, path: &str) -> Reply {
        get(&self.addr, path, &[&self.auth])
    }

    fn register(&self, root: &Path) -> Value {
        let body = json!({ "root": root }).to_string();
        let req = format!(
            "POST /projects HTTP/1.1\r\nHost: {}\r\n{}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            self.auth,
            body.len()
        );
        let r = raw(&self.addr, req.as_bytes());
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    fn query(&self, id: &str, q: &str) -> Reply {
        self.get(&format!("/projects/{id}/query?limit=50&q={q}"))
    }

    fn hit_paths(&self, id: &str, q: &str) -> Vec<String> {
        let r = self.query(id, q);
        assert_eq!(r.status, 200, "{}", r.body);
        hit_paths(&r.json())
    }

    fn projects(&self) -> Vec<Value> {
        let r = self.get("/projects");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["projects"].as_array().unwrap().clone()
    }

    /// Waits until every project holds `files` files and none is indexing.
    fn wait_indexed(&self, ids: &[String], files: u64) {
        wait_for(WAIT * 2, "every project indexed", || {
            let all = self.projects();
            ids.iter()
                .all(|id| {
                    all.iter().any(|p| {
                        p["id"] == id.as_str()
                            && p["index"]["files"] == files
                            && p["index"]["indexing"] == false
                    })
                })
                .then_some(())
        });
    }
}

/// A project `name` with `files` files under docs/, each named after the project and
/// holding its own marker.
fn make_project(t: &TestEnv, name: &str, files: usize) -> PathBuf {
    let root = t.root().join(name);
    std::fs::create_dir_all(root.join("docs")).unwrap();
    let filler = "Sections about common widgets and their many settings. ".repeat(40);
    for i in 0..files {
        std::fs::write(
            root.join(format!("docs/{name}_{i}.md")),
            format!(
                "# {name} file {i}\n\nmark{name}x common widget text.\n\n## More\n\n{filler}\n"
            ),
        )
        .unwrap();
    }
    root
}

/// The project id the README gives `root`: `p_` + 8 hex digits of SHA-256 of the
/// canonical root.
fn project_id_of(root: &Path) -> String {
    use sha2::Digest;
    let root = root.canonicalize().unwrap();
    let digest = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("p_{hex}")
}

/// Inodes of the flocks `pid` holds, from /proc/locks.
fn flocks_of(pid: u32) -> BTreeSet<u64> {
    let text = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; blocked waiters are "->".
            if f.len() < 6 || f[1] != "FLOCK" || f[4] != pid.to_string() {
                return None;
            }
            f[5].rsplit(':').next()?.parse().ok()
        })
        .collect()
}

#[test]
fn thirty_projects_are_isolated_and_indexing_is_capped() {
    use std::os::unix::fs::MetadataExt;
    let mut t = TestEnv::new();
    write_shared_config(&t, json!({ "port": 0, "max_concurrent_indexing": 2 }));
    let (pid, addr, token) = start_daemon(&mut t);
    let d = Daemon::new(addr, &token);

    let names: Vec<String> = (0..30).map(|i| format!("proj{i:02}")).collect();
    let roots: Vec<PathBuf> = names.iter().map(|n| make_project(&t, n, 40)).collect();

    // Watch which flocks the daemon holds, and its indexing queue, while the thirty
    // first indexings run.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<BTreeSet<u64>>>> = Arc::default();
    let locks = {
        let (stop, seen) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let held = flocks_of(pid);
                if held.len() > 1 {
                    seen.lock().unwrap().push(held);
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        })
    };
    let queue = {
        let (stop, d) = (stop.clone(), d.clone());
        std::thread::spawn(move || {
            let mut queued = false;
            while !stop.load(Ordering::Relaxed) && !queued {
                let status = d.get("/status").json();
                queued = !status["projects"]["indexing"]["queued"]
                    .as_array()
                    .unwrap()
                    .is_empty();
            }
            queued
        })
    };
    // All at once, as thirty assistants opening their projects would.
    let registering: Vec<_> = roots
        .into_iter()
        .map(|root| {
            let d = d.clone();
            std::thread::spawn(move || d.register(&root))
        })
        .collect();
    let mut ids = Vec::new();
    for (r, name) in registering.into_iter().zip(&names) {
        let reg = r.join().unwrap();
        assert_eq!(reg["created"], true, "{reg}");
        assert_eq!(reg["id"], project_id_of(&t.root().join(name)).as_str());
        ids.push(reg["id"].as_str().unwrap().to_owned());
    }
    d.wait_indexed(&ids, 40);
    stop.store(true, Ordering::Relaxed);
    locks.join().unwrap();
    let queued_seen = queue.join().unwrap();

    // Observed, not assumed: index locks held by the daemon at one instant.
    let index_locks: BTreeSet<u64> = ids
        .iter()
        .map(|id| {
            std::fs::metadata(home_dir(&t).join(format!("projects/{id}/data/.index.lock")))
                .unwrap()
                .ino()
        })
        .collect();
    let most = seen
        .lock()
        .unwrap()
        .iter()
        .map(|held| held.intersection(&index_locks).count())
        .max()
        .unwrap_or(0);
    eprintln!("most index locks held at once: {most}; a job was seen queued: {queued_seen}");
    assert!(
        most <= 2,
        "{most} projects were writing at once; the cap is 2"
    );
    assert!(
        most >= 1,
        "no index lock was ever seen held: the watch saw nothing"
    );
    assert!(
        queued_seen,
        "thirty registrations never queued a job behind the cap of 2"
    );

    // Every project answers with its own documents only.
    for (i, (name, id)) in names.iter().zip(&ids).enumerate() {
        let own = d.hit_paths(id, &format!("mark{name}x"));
        assert!(!own.is_empty(), "{name} does not find its own marker");
        assert!(
            own.iter().all(|p| p.starts_with(&format!("docs/{name}_"))),
            "{own:?}"
        );
        let common = d.hit_paths(id, "common+widget");
        assert!(!common.is_empty());
        assert!(
            common
                .iter()
                .all(|p| p.starts_with(&format!("docs/{name}_"))),
            "{name} got another project's documents: {common:?}"
        );
        let other = &names[(i + 1) % names.len()];
        assert!(d.hit_paths(id, &format!("mark{other}x")).is_empty());
    }
    let status = d.get("/status").json();
    assert_eq!(status["projects"]["registered"], 30);
    assert_eq!(status["projects"]["indexing"]["max_concurrent"], 2);
}

#[test]
fn registrations_survive_restart_and_sigkill() {
    let mut t = TestEnv::new();
    write_shared_config(&t, json!({ "port": 0 }));
    let (pid, addr, token) = start_daemon(&mut t);
    let d = Daemon::new(addr, &token);
    let mut ids = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        let root = make_project(&t, name, 3);
        ids.push(d.register(&root)["id"].as_str().unwrap().to_owned());
    }
    d.wait_indexed(&ids, 3);
    let before: Vec<Vec<String>> = ids.iter().map(|id| d.hit_paths(id, "common")).collect();

    // A clean stop, then a restart: the same projects, the same answers.
    signal(pid, Signal::SIGTERM);
    assert_eq!(t.wait_child(pid, WAIT), Some(0));
    assert!(!home_dir(&t).join("runtime.json").exists());
    let (pid, addr, token) = start_daemon(&mut t);
    let d = Daemon::new(addr, &token);
    let listed: BTreeSet<String> = d
        .projects()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ids.iter().cloned().collect());
    let after: Vec<Vec<String>> = ids.iter().map(|id| d.hit_paths(id, "common")).collect();
    assert_eq!(after, before);

    // SIGKILL: stale files left behind, and the next daemon serves every project.
    signal(pid, Signal::SIGKILL);
    t.wait_child(pid, WAIT);
    let (_, addr, token) = start_daemon(&mut t);
    let d = Daemon::new(addr, &token);
    assert_eq!(d.projects().len(), 3);
    let again: Vec<Vec<String>> = ids.iter().map(|id| d.hit_paths(id, "common")).collect();
    assert_eq!(again, before);
    // Re-registering is idempotent.
    assert_eq!(
        d.register(&t.root().join("alpha"))["created"],
        false,
        "a second registration of the same root"
    );
    // A body that is not an object is refused, not read by position.
    let body = json!([t.root().join("beta")]).to_string();
    let r = raw(
        &d.addr,
        format!(
            "POST /projects HTTP/1.1\r\nHost: {}\r\n{}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            d.addr,
            d.auth,
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["code"], "bad_body");
    assert_eq!(d.projects().len(), 3);
}

#[test]
fn one_broken_project_leaves_the_others_serving() {
    let mut t = TestEnv::new();
    write_shared_config(&t, json!({ "port": 0 }));
    let (pid, addr, token) = start_daemon(&mut t);
    let d = Daemon::new(addr, &token);
    let mut ids = Vec::new();
    for name in ["good", "corrupt", "vanished"] {
        let root = make_project(&t, name, 2);
        ids.push(d.register(&root)["id"].as_str().unwrap().to_owned());
    }
    d.wait_indexed(&ids, 2);
    signal(pid, Signal::SIGTERM);
    assert_eq!(t.wait_child(pid, WAIT), Some(0));

    // Corrupt one project's index, remove another's root.
    let data = home_dir(&t).join(format!("projects/{}/data", ids[1]));
    let index = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("index-"))
        .unwrap()
        .path();
    std::fs::write(index.join("meta.json"), "{ not json").unwrap();
    std::fs::remove_dir_all(t.root().join("vanished")).unwrap();

    let (pid, addr, token) = start_daemon(&mut t);
    let d = Daemon::new(addr, &token);
    let good = ["docs/good_0.md", "docs/good_1.md"];
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(sorted(d.hit_paths(&ids[0], "markgoodx")), good);
    let r = d.query(&ids[1], "common");
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["code"], "project_unavailable");
    assert!(
        r.json()["message"].as_str().unwrap().contains(&ids[1]),
        "{}",
        r.body
    );
    let r = d.query(&ids[2], "common");
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["code"], "project_root_missing");
    // Both are reported, and the daemon and the good project go on.
    let listed = d.projects();
    let entry = |id: &str| listed.iter().find(|p| p["id"] == id).unwrap().clone();
    assert!(entry(&ids[1])["error"].is_string(), "{listed:?}");
    assert_eq!(entry(&ids[2])["root_exists"], false);
    assert!(entry(&ids[2])["error"].is_string(), "{listed:?}");
    assert!(alive(pid));
    assert_eq!(sorted(d.hit_paths(&ids[0], "markgoodx")), good);
    let r = d.get("/projects/p_00000000/query?q=x");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "unknown_project");
    let r = d.get("/query?q=x");
    assert_eq!(r.status, 404);
    assert!(r.json()["message"].as_str().unwrap().contains("/projects/"));
}

#[test]
fn a_taken_port_names_its_owner() {
    let mut t = TestEnv::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    write_shared_config(&t, json!({ "port": port }));
    let pid = t.spawn_serve(&["--shared"]);
    assert_eq!(t.wait_child(pid, WAIT), Some(2));
    let err = std::fs::read_to_string(t.root().join("serve.err")).unwrap();
    assert!(
        err.contains(&format!("port {port} is already in use")),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(listener);
}

#[test]
fn a_shared_mode_project_is_served_by_the_daemon() {
    let t = TestEnv::new();
    write_shared_config(&t, json!({ "port": 0 }));
    std::fs::create_dir_all(t.project.join("docs")).unwrap();
    std::fs::write(
        t.project.join("docs/guide.md"),
        "# Guide\n\nThe sharedmarker lives here.\n",
    )
    .unwrap();
    let init = t.json(&["init", "--mode", "shared", "--json"]);
    let id = init["shared"]["project_id"].as_str().unwrap().to_owned();
    assert!(init["shared"]["daemon"].is_null());

    // No daemon yet: standalone, on the index in the daemon's home.
    let v = t.json(&["query", "--json", "sharedmarker"]);
    assert_eq!(v["hits"][0]["path"], "docs/guide.md");
    assert!(home_dir(&t).join(format!("projects/{id}/data")).is_dir());
    assert!(!t.state_dir().join("data").exists());

    // `start` starts the daemon and registers the project; clients then use it.
    let started = t.json(&["start", "--json"]);
    let pid = started["pid"].as_u64().unwrap() as u32;
    let rt: Value =
        serde_json::from_str(&std::fs::read_to_string(home_dir(&t).join("runtime.json")).unwrap())
            .unwrap();
    assert_eq!(rt["pid"], pid);
    let pointer = t.runtime();
    assert_eq!(pointer["mode"], "shared");
    assert_eq!(pointer["project_id"], id.as_str());
    assert_eq!(pointer["base_url"], rt["base_url"]);
    let d = Daemon::new(addr_of(&rt), rt["token"].as_str().unwrap());
    let served = |d: &Daemon| {
        d.get("/status").json()["requests"]["served"]
            .as_u64()
            .unwrap()
    };
    let before = served(&d);
    let v = t.json(&["query", "--json", "sharedmarker"]);
    assert_eq!(v["hits"][0]["path"], "docs/guide.md");
    assert!(served(&d) > before, "the query did not reach the daemon");

    let status = t.json(&["status", "--json"]);
    assert_eq!(status["state"], "running");
    assert_eq!(status["served_by"]["project_id"], id.as_str());
    let w = t.json(&["where", "--json"]);
    assert_eq!(w["served_by"]["daemon"], "shared");
    assert_eq!(w["addresses"][0]["address"], rt["base_url"]);
    let err = t.run(&["stop"]);
    assert_eq!(err.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&err.stderr).contains("stop --shared"));

    // A project-mode project beside it is not touched.
    let other = make_project(&t, "solo", 1);
    let out = t
        .cmd(&[
            "--path",
            other.to_str().unwrap(),
            "query",
            "--json",
            "marksolox",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(other.join(".claude/doc-serve/data").is_dir());
    assert_eq!(d.projects().len(), 1);

    // Stopping the daemon removes the pointer with its own runtime.json.
    t.ok(&["stop", "--shared"]);
    assert!(!alive(pid));
    assert!(!t.state_file("runtime.json").exists());
}

#[test]
fn projects_open_on_demand_watch_and_close_when_idle() {
    let mut t = TestEnv::new();
    write_shared_config(
        &t,
        json!({ "port": 0, "max_open_projects": 2, "project_idle_seconds": 2 }),
    );
    let (_, addr, token) = start_daemon(&mut t);
    let d = Daemon::new(addr, &token);
    let open = |d: &Daemon| {
        d.get("/status").json()["projects"]["open"]
            .as_u64()
            .unwrap()
    };
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        let root = make_project(&t, name, 2);
        ids.push(d.register(&root)["id"].as_str().unwrap().to_owned());
    }
    d.wait_indexed(&ids, 2);
    // A project is closed once its running job is done.
    wait_for(WAIT, "max_open_projects", || (open(&d) <= 2).then_some(()));

    // An open project watches its root: a new file is found without a reindex.
    assert_eq!(d.hit_paths(&ids[2], "markthreex").len(), 2);
    std::fs::write(
        t.root().join("three/docs/new.md"),
        "# New\n\nfreshlywritten words.\n",
    )
    .unwrap();
    wait_for(WAIT, "the watcher's update", || {
        (d.hit_paths(&ids[2], "freshlywritten") == ["docs/new.md"]).then_some(())
    });

    // Idle projects close; the next request opens one again, caught up with the disk.
    wait_for(WAIT, "idle projects closed", || {
        (open(&d) == 0).then_some(())
    });
    std::fs::write(
        t.root().join("three/docs/later.md"),
        "# Later\n\nwrittenwhileclosed words.\n",
    )
    .unwrap();
    wait_for(WAIT, "a reopened project catching up", || {
        (d.hit_paths(&ids[2], "writtenwhileclosed") == ["docs/later.md"]).then_some(())
    });
    assert_eq!(open(&d), 1);
    let listed = d.projects();
    let closed = listed.iter().find(|p| p["id"] == ids[0].as_str()).unwrap();
    assert_eq!(closed["open"], false);
    assert_eq!(
        closed["index"]["files"], 2,
        "a closed project keeps its figures"
    );
}

/// The daemon opens a project at its first request, and that query waits for the
/// project's first index (it used to answer "nothing" from the index being built).
#[test]
fn a_project_opened_by_its_first_query_answers_from_its_whole_index() {
    let t = TestEnv::new();
    write_shared_config(&t, json!({ "port": 0 }));
    let root = make_project(&t, "big", 2000);
    std::fs::create_dir_all(root.join("docs/zz")).unwrap();
    std::fs::write(root.join("docs/zz/needle.md"), "# Needle\n\nquuxneedle\n").unwrap();
    let path = root.to_str().unwrap();
    t.ok(&["--path", path, "init", "--mode", "shared"]);
    t.ok(&["--path", path, "start"]);
    let out = t.run(&["--path", path, "query", "--json", "quuxneedle"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(v["index"].is_object(), "no freshness footer: {v}");
    if v["index"]["indexing"] == false {
        assert_eq!(out.status.code(), Some(0), "{v} {err}");
        assert_eq!(v["hits"][0]["path"], "docs/zz/needle.md", "{v}");
        assert_eq!(v["index"]["files"], 2001, "{v}");
    } else {
        assert!(err.contains("still being built"), "{err}");
    }
    t.ok(&["stop", "--shared"]);
}

/// A field `POST /projects` does not know is 400 `bad_body`, as one of `/query` or
/// `/index` is, and registers nothing: `{"root": ..., "roots": [...]}` was taken as
/// `{"root": ...}`.
#[test]
fn registering_refuses_a_field_it_does_not_know() {
    let mut t = TestEnv::new();
    write_shared_config(&t, json!({ "port": 0 }));
    let (_, addr, token) = start_daemon(&mut t);
    let d = Daemon::new(addr, &token);
    let root = make_project(&t, "typo", 1);
    let body = json!({ "root": root, "roots": [root] }).to_string();
    let req = format!(
        "POST /projects HTTP/1.1\r\nHost: {}\r\n{}\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        d.addr,
        d.auth,
        body.len()
    );
    let r = raw(&d.addr, req.as_bytes());
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["code"], "bad_body");
    assert!(
        r.json()["message"].as_str().unwrap().contains("roots"),
        "{}",
        r.body
    );
    assert!(d.projects().is_empty());
}
