//! `doc-serve model fetch|list|embed`: download a known embedding model into the model
//! cache, list what is there, and embed lines of text (for debugging and the
//! throughput benchmark). None of them needs a project.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use clap::Subcommand;
use serde::Serialize;

use super::{Context, at_least_one, output};
use crate::config::{Environment, Flags};
use crate::embed::fetch::{self, ENDPOINT_VAR, Endpoint, Progress};
use crate::embed::{MODEL_FILES, Model, known};
use crate::error::exit;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download a known model from the Hugging Face hub into the model cache
    ///
    /// Every file is checked against the size and SHA-256 doc-serve pins while it
    /// downloads, and none takes its place until all are verified: a mismatch or a cut
    /// transfer installs nothing. An installed model is verified, not downloaded again.
    /// The cache is $DOC_SERVE_MODEL_DIR, else $XDG_CACHE_HOME/doc-serve/models, else
    /// ~/.cache/doc-serve/models. DOC_SERVE_HF_ENDPOINT names another hub, such as a
    /// mirror (default https://huggingface.co; plain http:// only on a loopback
    /// address).
    Fetch {
        /// A known model's name (see `doc-serve model list`)
        name: String,
        /// Download every file again, even those installed and verified
        #[arg(long)]
        force: bool,
        /// Print the installed model as JSON: its path and each file, downloaded or
        /// found in place
        #[arg(long)]
        json: bool,
    },
    /// List the known models and the model directories in the cache, installed or not
    List {
        /// Print them as JSON: the cache dir, the models (name, dimensions, state,
        /// path) and the project's embedding_model
        #[arg(long)]
        json: bool,
    },
    /// Embed texts from stdin, one per line: prints one unit vector per line, as a
    /// JSON array, in order
    ///
    /// A summary goes to stderr: texts, seconds spent embedding, texts per second (and
    /// the model's load time). For debugging and benchmarks.
    Embed {
        /// A known model's name (installed in the cache) or a model directory
        #[arg(long, value_name = "NAME|DIR", default_value = "all-MiniLM-L6-v2")]
        model: String,
        /// Threads to embed on (default: one per core)
        #[arg(long, value_name = "N", value_parser = at_least_one)]
        threads: Option<usize>,
        /// Print the summary on stderr as a JSON object
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: &ModelCommand, env: &Environment, path: Option<&Path>) -> anyhow::Result<i32> {
    match cmd {
        ModelCommand::Fetch { name, force, json } => fetch(env, name, *force, *json),
        ModelCommand::List { json } => list(env, path, *json),
        ModelCommand::Embed {
            model,
            threads,
            json,
        } => embed(model, *threads, *json),
    }
}

fn cache_dir() -> anyhow::Result<PathBuf> {
    known::cache_dir().context(
        "cannot tell where models are kept: set DOC_SERVE_MODEL_DIR (or XDG_CACHE_HOME or HOME)",
    )
}

fn fetch(env: &Environment, name: &str, force: bool, json: bool) -> anyhow::Result<i32> {
    let Some(model) = known::find(name) else {
        anyhow::bail!(
            "{name:?} is not a known model; known models: {}. A model of your own needs no \
             fetch: name its directory (holding {}) instead",
            known::names(),
            MODEL_FILES.join(", ")
        );
    };
    let cache = cache_dir()?;
    let endpoint = Endpoint::from_setting(env.get(ENDPOINT_VAR))?;
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        super::progress_bar(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
    });
    let fetched = fetch::fetch(model, &cache, &endpoint, force, &mut |p| match p {
        Progress::Waiting => tracing::warn!(
            "another `doc-serve model fetch {}` is running; waiting for it to finish",
            model.name
        ),
        Progress::Plan { bytes, .. } => {
            if let Some(b) = &bar {
                b.set_length(bytes);
            }
        }
        Progress::Downloading { file, .. } => {
            if let Some(b) = &bar {
                b.set_message(file.to_string());
            }
        }
        Progress::Bytes(n) => {
            if let Some(b) = &bar {
                b.inc(n);
            }
        }
    });
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let fetched = fetched.with_context(|| format!("cannot install {}", model.name))?;
    output::emit(json, &fetched, |out| {
        let got: Vec<_> = fetched.files.iter().filter(|f| f.downloaded).collect();
        if got.is_empty() {
            writeln!(
                out,
                "{} is installed in {}: {} files verified",
                fetched.model,
                fetched.path.display(),
                fetched.files.len()
            )
        } else {
            let bytes: u64 = got.iter().map(|f| f.bytes).sum();
            writeln!(
                out,
                "{}: downloaded {} of {} files ({:.1} MB) into {}, all verified",
                fetched.model,
                got.len(),
                fetched.files.len(),
                bytes as f64 / 1e6,
                fetched.path.display()
            )
        }
    })?;
    Ok(exit::OK)
}

#[derive(Serialize)]
struct Listed {
    name: String,
    /// A model doc-serve can fetch (else a directory found in the cache).
    known: bool,
    dims: Option<usize>,
    about: Option<&'static str>,
    /// `installed`, `incomplete` (some files missing or of the wrong size) or
    /// `missing`.
    state: &'static str,
    path: PathBuf,
}

#[derive(Serialize)]
struct ListReply {
    cache_dir: PathBuf,
    models: Vec<Listed>,
    /// The current project's `embedding_model`, when it names one.
    project_model: Option<String>,
}

fn list(env: &Environment, path: Option<&Path>, json: bool) -> anyhow::Result<i32> {
    let cache = cache_dir()?;
    let mut models: Vec<Listed> = known::KNOWN
        .iter()
        .map(|k| {
            let dir = cache.join(k.name);
            let present = k.files.iter().filter(|f| {
                std::fs::metadata(dir.join(f.name)).is_ok_and(|m| m.is_file() && m.len() == f.size)
            });
            let state = match present.count() {
                n if n == k.files.len() => "installed",
                0 if !dir.exists() => "missing",
                _ => "incomplete",
            };
            Listed {
                name: k.name.into(),
                known: true,
                dims: Some(k.dim),
                about: Some(k.about),
                state,
                path: dir,
            }
        })
        .collect();
    let mut others: Vec<Listed> = match std::fs::read_dir(&cache) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let dir = e.path();
                let is_dir = std::fs::metadata(&dir).is_ok_and(|m| m.is_dir());
                let ours = known::KNOWN.iter().any(|k| k.name == name);
                (!name.starts_with('.') && is_dir && !ours).then(|| Listed {
                    dims: dims_of(&dir),
                    state: if MODEL_FILES.iter().all(|f| dir.join(f).is_file()) {
                        "installed"
                    } else {
                        "incomplete"
                    },
                    name,
                    known: false,
                    about: None,
                    path: dir,
                })
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", cache.display())),
    };
    others.sort_by(|a, b| a.name.cmp(&b.name));
    models.append(&mut others);
    // Only if it is cheap: a directory outside any project, or settings that do not
    // load, just leave it out.
    let project_model = Context::new(env.clone(), path)
        .and_then(|ctx| ctx.load_config(&Flags::default()))
        .ok()
        .and_then(|c| c.embedding_model);
    let reply = ListReply {
        cache_dir: cache,
        models,
        project_model,
    };
    output::emit(json, &reply, |out| {
        writeln!(out, "model cache: {}", reply.cache_dir.display())?;
        let width = reply.models.iter().map(|m| m.name.len()).max().unwrap_or(0);
        for m in &reply.models {
            let dims = m.dims.map(|d| format!("{d} dims")).unwrap_or_default();
            let about = match (m.about, m.state) {
                (Some(a), "installed") => a.to_string(),
                (Some(a), _) => format!("{a} (doc-serve model fetch {})", m.name),
                (None, _) => format!("not a known model, in {}", m.path.display()),
            };
            writeln!(
                out,
                "  {:width$}  {dims:>8}  {:10}  {about}",
                m.name, m.state
            )?;
        }
        if let Some(p) = &reply.project_model {
            writeln!(out, "this project's embedding_model: {p}")?;
        }
        Ok(())
    })?;
    Ok(exit::OK)
}

/// `hidden_size` from a model directory's config.json.
fn dims_of(dir: &Path) -> Option<usize> {
    let text = std::fs::read(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    v["hidden_size"].as_u64().map(|n| n as usize)
}

/// Texts embedded together: long enough for the model to batch them by length, short
/// enough that vectors start coming out at once.
const CHUNK: usize = 1024;

#[derive(Serialize)]
struct EmbedSummary {
    model: String,
    dim: usize,
    threads: usize,
    texts: usize,
    /// Seconds spent embedding (not loading the model, not reading stdin).
    seconds: f64,
    texts_per_second: f64,
    load_seconds: f64,
}

fn embed(setting: &str, threads: Option<usize>, json: bool) -> anyhow::Result<i32> {
    if setting.trim().is_empty() {
        anyhow::bail!("--model is empty: name a known model or a model directory");
    }
    let dir = if known::find(setting).is_some() && !setting.contains('/') {
        known::resolve(setting, &cache_dir()?)
    } else {
        PathBuf::from(setting)
    };
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let start = Instant::now();
    let model = Model::load(&dir, threads)?;
    let load_seconds = start.elapsed().as_secs_f64();
    let mut stdin = std::io::stdin().lock();
    let (mut texts, mut seconds) = (0usize, 0f64);
    let mut line = Vec::new();
    let mut chunk: Vec<String> = Vec::with_capacity(CHUNK);
    let mut at_end = false;
    while !at_end {
        chunk.clear();
        while chunk.len() < CHUNK {
            line.clear();
            if stdin
                .read_until(b'\n', &mut line)
                .context("cannot read stdin")?
                == 0
            {
                at_end = true;
                break;
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let n = texts + chunk.len() + 1;
            let text = std::str::from_utf8(text)
                .with_context(|| format!("stdin line {n} is not UTF-8"))?;
            chunk.push(text.to_owned());
        }
        if chunk.is_empty() {
            break;
        }
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let began = Instant::now();
        let vectors = model.embed(&refs)?;
        seconds += began.elapsed().as_secs_f64();
        texts += chunk.len();
        if !output::json_lines(&vectors)? {
            break;
        }
    }
    let summary = EmbedSummary {
        model: model.name().to_string(),
        dim: model.dim(),
        threads,
        texts,
        seconds,
        texts_per_second: if seconds > 0.0 {
            texts as f64 / seconds
        } else {
            0.0
        },
        load_seconds,
    };
    let line = if json {
        serde_json::to_string(&summary)?
    } else {
        format!(
            "{} texts in {:.3} s: {:.1} texts/s ({}, {} dims, {} threads; loaded in {:.2} s)",
            summary.texts,
            summary.seconds,
            summary.texts_per_second,
            summary.model,
            summary.dim,
            summary.threads,
            summary.load_seconds
        )
    };
    output::note(&line);
    Ok(exit::OK)
}
