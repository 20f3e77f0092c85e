//! `doc-serve model fetch|list|embed` through the real binary. The hub cannot be reached
//! from the tests: a small HTTP server on 127.0.0.1 serves the test model's files
//! (installed under target/ by tests/embed/setup, which .ci/run runs) as the hub lays
//! them out, redirecting the weights as the hub does, and `DOC_SERVE_HF_ENDPOINT`
//! points at it. It can also corrupt a byte of a file or cut its transfer short.
//! Outside CI the tests that need the model skip without it, saying so.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

const MODEL: &str = "all-MiniLM-L6-v2";
const FILES: [&str; 5] = [
    "config.json",
    "tokenizer.json",
    "model.safetensors",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
];

/// The test model's directory, or `None` (a skip) outside CI.
pub fn test_model() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/models")
        .join(MODEL);
    if FILES.iter().all(|f| dir.join(f).is_file()) {
        return Some(dir);
    }
    assert!(
        !in_ci(),
        "the test model is required in CI: run tests/embed/setup"
    );
    eprintln!("SKIP: no test model in target/models (run tests/embed/setup)");
    None
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    /// One byte of this file is flipped.
    Corrupt(&'static str),
    /// Half of this file is sent under the whole file's Content-Length, then the
    /// connection closes.
    Cut(&'static str),
    /// Half of this file is sent with no Content-Length, then the connection closes
    /// (which ends such a body).
    Short(&'static str),
}

/// A stand-in for the hub: `/{repo}/resolve/{revision}/{file}`, the weights redirected
/// to `/cdn/{file}` as the hub sends large files to its CDN.
struct Hub {
    addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    /// Paths asked for, in order.
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hub {
    fn start(model: &Path) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fault = Arc::new(Mutex::new(Fault::None));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (model, fault, asked, stop) = (
                model.to_path_buf(),
                fault.clone(),
                asked.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let fault = *fault.lock().unwrap();
                    serve(conn, &model, fault, &asked);
                }
            })
        };
        Hub {
            addr,
            fault,
            asked,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_fault(&self, f: Fault) {
        *self.fault.lock().unwrap() = f;
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request on `conn`, then closes it.
fn serve(conn: TcpStream, model: &Path, fault: Fault, asked: &Mutex<Vec<String>>) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    asked.lock().unwrap().push(path.clone());
    let mut out = conn;
    let prefix = format!("/sentence-transformers/{MODEL}/resolve/");
    let file = if let Some(rest) = path.strip_prefix(&prefix) {
        // Past the revision.
        let file = rest.split_once('/').map(|(_, f)| f).unwrap_or_default();
        if file == "model.safetensors" {
            let _ = write!(
                out,
                "HTTP/1.1 302 Found\r\nLocation: /cdn/{file}\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            );
            return;
        }
        file.to_string()
    } else if let Some(file) = path.strip_prefix("/cdn/") {
        file.to_string()
    } else {
        String::new()
    };
    let Some(file) = FILES.iter().find(|f| **f == file) else {
        let _ = out
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let mut body = std::fs::read(model.join(file)).unwrap();
    let whole = body.len();
    let mut length = Some(whole);
    match fault {
        Fault::Corrupt(f) if f == *file => {
            let mid = body.len() / 2;
            body[mid] ^= 0x01;
        }
        Fault::Cut(f) if f == *file => body.truncate(whole / 2),
        Fault::Short(f) if f == *file => {
            body.truncate(whole / 2);
            length = None;
        }
        _ => {}
    }
    let length = length
        .map(|n| format!("Content-Length: {n}\r\n"))
        .unwrap_or_default();
    // The client hangs up on a body it refuses: write errors are expected then.
    let _ = write!(out, "HTTP/1.1 200 OK\r\n{length}Connection: close\r\n\r\n");
    let _ = out.write_all(&body);
    let _ = out.flush();
}

fn cache_of(t: &TestEnv) -> PathBuf {
    t.root().join("home/.cache/doc-serve/models")
}

/// Files under `dir` whose name ends with `.part` (temporary downloads).
fn partial_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(partial_files(&p));
        } else if p.to_string_lossy().ends_with(".part") {
            found.push(p);
        }
    }
    found
}

/// Whether every file of the model in the cache is the test model's, byte for byte.
fn installed_intact(t: &TestEnv, model: &Path) -> bool {
    let dir = cache_of(t).join(MODEL);
    FILES
        .iter()
        .all(|f| std::fs::read(dir.join(f)).ok() == std::fs::read(model.join(f)).ok())
}

fn state_in_list(t: &TestEnv) -> String {
    let list = t.json(&["model", "list", "--json"]);
    let entry = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == MODEL)
        .unwrap();
    entry["state"].as_str().unwrap().to_string()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn model_fetch_installs_verified_files_once() {
    let Some(model) = test_model() else { return };
    let hub = Hub::start(&model);
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_HF_ENDPOINT", &hub.url());
    assert_eq!(state_in_list(&t), "missing");

    let v = t.json(&["model", "fetch", MODEL, "--json"]);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), FILES.len(), "{v}");
    assert!(files.iter().all(|f| f["downloaded"] == true), "{v}");
    assert!(installed_intact(&t, &model));
    assert!(partial_files(&cache_of(&t)).is_empty());
    // The weights came through the redirect.
    assert!(hub.asked().iter().any(|p| p == "/cdn/model.safetensors"));
    let list = t.json(&["model", "list", "--json"]);
    assert_eq!(state_in_list(&t), "installed", "{list}");

    // Again: every file is verified in place, nothing is downloaded.
    let asked = hub.asked().len();
    let v = t.json(&["model", "fetch", MODEL, "--json"]);
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["downloaded"] == false)
    );
    assert_eq!(hub.asked().len(), asked, "{:?}", hub.asked());
    let text = t.ok(&["model", "fetch", MODEL]);
    assert!(text.contains("files verified"), "{text}");

    // A file damaged in place is downloaded again, alone.
    let config = cache_of(&t).join(MODEL).join("config.json");
    std::fs::write(&config, b"{}").unwrap();
    assert_eq!(state_in_list(&t), "incomplete");
    let v = t.json(&["model", "fetch", MODEL, "--json"]);
    let downloaded: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["downloaded"] == true)
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert_eq!(downloaded, ["config.json"]);
    assert!(installed_intact(&t, &model));

    // --force downloads everything again.
    let asked = hub.asked().len();
    t.ok(&["model", "fetch", MODEL, "--force"]);
    assert!(hub.asked().len() >= asked + FILES.len());
    assert!(installed_intact(&t, &model));

    // The installed model embeds (found by name in the cache).
    let out = t.run_with_input(
        &["model", "embed", "--threads", "1"],
        "Restart policies\n\nなぜ\n".as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let lines: Vec<Vec<f64>> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for v in &lines {
        assert_eq!(v.len(), 384);
        let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    }
    let summary = stderr_of(&out);
    assert!(summary.contains("3 texts in"), "{summary}");
    assert!(summary.contains("texts/s"), "{summary}");
}

#[test]
fn model_fetch_of_a_corrupted_file_installs_nothing() {
    let Some(model) = test_model() else { return };
    let hub = Hub::start(&model);
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_HF_ENDPOINT", &hub.url());
    hub.set_fault(Fault::Corrupt("tokenizer.json"));
    let out = t.run(&["model", "fetch", MODEL]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains(&format!(
            "{}/sentence-transformers/{MODEL}/resolve/",
            hub.url()
        )) && err.contains("tokenizer.json"),
        "{err}"
    );
    assert!(
        err.contains("be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        "{err}"
    );
    assert!(err.contains("got SHA-256"), "{err}");
    // Not even config.json, which was fine: nothing takes its place until all are
    // verified.
    assert!(!cache_of(&t).join(MODEL).exists());
    assert!(partial_files(&cache_of(&t)).is_empty());
    assert_eq!(state_in_list(&t), "missing");

    // An installed model is left whole by a forced fetch that fails.
    hub.set_fault(Fault::None);
    t.ok(&["model", "fetch", MODEL]);
    hub.set_fault(Fault::Corrupt("model.safetensors"));
    let out = t.run(&["model", "fetch", MODEL, "--force"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(&out));
    assert!(installed_intact(&t, &model));
    assert!(partial_files(&cache_of(&t)).is_empty());
}

#[test]
fn model_fetch_of_a_cut_transfer_installs_nothing() {
    let Some(model) = test_model() else { return };
    let hub = Hub::start(&model);
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_HF_ENDPOINT", &hub.url());
    // The weights come last but one: the files before them were verified already.
    for (fault, says) in [
        (
            Fault::Cut("model.safetensors"),
            "the transfer stopped after",
        ),
        (Fault::Short("model.safetensors"), "(45434188 bytes)"),
    ] {
        hub.set_fault(fault);
        let out = t.run(&["model", "fetch", MODEL]);
        assert_eq!(out.status.code(), Some(2), "{fault:?}");
        let err = stderr_of(&out);
        assert!(err.contains("/cdn/model.safetensors"), "{fault:?}: {err}");
        assert!(err.contains(says), "{fault:?}: {err}");
        assert!(!cache_of(&t).join(MODEL).exists(), "{fault:?}");
        assert!(partial_files(&cache_of(&t)).is_empty(), "{fault:?}");
    }
    hub.set_fault(Fault::None);
    t.ok(&["model", "fetch", MODEL]);
    assert!(installed_intact(&t, &model));
}

#[test]
fn model_fetch_refuses_unknown_names_and_plain_http_off_loopback() {
    let mut t = TestEnv::new();
    let out = t.run(&["model", "fetch", "no-such-model"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("not a known model") && err.contains(MODEL),
        "{err}"
    );

    // Checked before any connection is tried.
    for endpoint in [
        "http://example.com",
        "http://127.0.0.1@example.com",
        "ftp://127.0.0.1",
    ] {
        t.set("DOC_SERVE_HF_ENDPOINT", endpoint);
        let out = t.run(&["model", "fetch", MODEL]);
        assert_eq!(out.status.code(), Some(2), "{endpoint}");
        let err = stderr_of(&out);
        assert!(err.contains("DOC_SERVE_HF_ENDPOINT"), "{endpoint}: {err}");
    }
    assert!(!cache_of(&t).join(MODEL).exists());

    // A hub without the file: the URL and the status.
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path());
    t.set("DOC_SERVE_HF_ENDPOINT", &format!("{}/elsewhere", hub.url()));
    let out = t.run(&["model", "fetch", MODEL]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("/elsewhere/sentence-transformers/") && err.contains("404"),
        "{err}"
    );
}

#[test]
fn model_embed_without_a_model_names_the_path() {
    let t = TestEnv::new();
    let missing = t.root().join("no-model");
    let out = t.run(&["model", "embed", "--model", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains("cannot load the embedding model")
            && err.contains(&*missing.to_string_lossy()),
        "{err}"
    );
    // The default, a known model not installed: the path in the cache, and the fix.
    let out = t.run(&["model", "embed"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(
        err.contains(&*cache_of(&t).join(MODEL).to_string_lossy())
            && err.contains("doc-serve model fetch"),
        "{err}"
    );
}

/// The encoder through the binary: sentence-transformers' figures, the same vectors on
/// one thread and on two, and alone or in a batch padded to a longer text's length (the
/// padding mask, the per-head attention tasks and the fused steps of src/embed/layer.rs).
#[test]
fn model_embed_gives_the_same_vectors_on_any_thread_count_alone_or_padded() {
    let Some(model) = test_model() else { return };
    let t = TestEnv::new();
    let long =
        "Restart policies control whether a container is restarted when it exits. ".repeat(12);
    let texts = [
        "The cat sits outside",
        "A man is playing guitar",
        "Why does my service keep coming back after I kill it?",
        "Restart policies control whether a container is restarted when it exits.",
        long.trim(),
    ];
    let model = model.to_str().unwrap();
    let embed = |threads: &str, lines: &[&str]| -> Vec<Vec<f64>> {
        let out = t.run_with_input(
            &["model", "embed", "--model", model, "--threads", threads],
            lines.join("\n").as_bytes(),
        );
        assert!(out.status.success(), "{}", stderr_of(&out));
        let vectors: Vec<Vec<f64>> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(vectors.len(), lines.len());
        vectors
    };
    let cos = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let off = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    };
    let one = embed("1", &texts);
    assert!(
        one.iter()
            .all(|v| v.len() == 384 && (cos(v, v) - 1.0).abs() < 1e-5)
    );
    assert!((cos(&one[0], &one[1]) - 0.036330).abs() < 1e-4);
    assert!((cos(&one[2], &one[3]) - 0.307649).abs() < 1e-4);
    let two = embed("2", &texts);
    for i in 0..texts.len() {
        assert!(off(&one[i], &two[i]) < 1e-5, "text {i}: 1 thread vs 2");
    }
    // In the batch these were padded to the long text's length; alone they are not.
    for i in [0, 3] {
        let alone = embed("2", &texts[i..=i]);
        assert!(off(&one[i], &alone[0]) < 1e-5, "text {i}: alone vs padded");
    }
}

#[test]
fn model_list_shows_other_model_directories_and_the_project_setting() {
    let mut t = TestEnv::new();
    let models = t.root().join("models");
    std::fs::create_dir_all(models.join("mine")).unwrap();
    std::fs::write(models.join("mine/config.json"), r#"{"hidden_size": 768}"#).unwrap();
    t.set("DOC_SERVE_MODEL_DIR", models.to_str().unwrap());
    t.set("DOC_SERVE_EMBEDDING_MODEL", "mine");
    let v: Value = t.json(&["model", "list", "--json"]);
    assert_eq!(v["cache_dir"], models.to_str().unwrap());
    let mine = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "mine")
        .unwrap_or_else(|| panic!("{v}"));
    assert_eq!(mine["known"], false);
    assert_eq!(mine["dims"], 768);
    assert_eq!(mine["state"], "incomplete");
    assert_eq!(v["project_model"], "mine");
    // Neither variable is taken for an unknown config key.
    t.set("DOC_SERVE_HF_ENDPOINT", "https://hub.example");
    let out = t.run(&["where"]);
    assert!(out.status.success());
    assert!(
        !stderr_of(&out).contains("DOC_SERVE_"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn model_fetches_at_once_download_once_and_clear_a_killed_fetchs_leftovers() {
    let Some(model) = test_model() else { return };
    let hub = Hub::start(&model);
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_HF_ENDPOINT", &hub.url());
    // What a fetch killed mid-download leaves.
    let dir = cache_of(&t).join(MODEL);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".model.safetensors.part"), b"half").unwrap();
    assert_eq!(state_in_list(&t), "incomplete");

    let children: Vec<_> = (0..3)
        .map(|_| {
            t.cmd(&["model", "fetch", MODEL, "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut downloads = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        downloads += v["files"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["downloaded"] == true)
            .count();
    }
    // One of them downloaded each file; the others waited, then verified.
    assert_eq!(downloads, FILES.len());
    assert_eq!(hub.asked().len(), FILES.len() + 1, "{:?}", hub.asked());
    assert!(installed_intact(&t, &model));
    assert!(partial_files(&cache_of(&t)).is_empty());
    assert_eq!(state_in_list(&t), "installed");
    // Leftovers beside an installed model go too, with nothing downloaded.
    std::fs::write(dir.join("1_Pooling/.config.json.part"), b"{").unwrap();
    t.ok(&["model", "fetch", MODEL]);
    assert!(partial_files(&cache_of(&t)).is_empty());
    assert_eq!(hub.asked().len(), FILES.len() + 1);
}
