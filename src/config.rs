//! Settings, read in one place: defaults < config.json < `DOC_SERVE_*` < flags.
//!
//! Every layer sets keys by the same name (`port` in config.json is `DOC_SERVE_PORT` in
//! the environment and `--port` on the command line), and every value is type-checked
//! with the name of its source, so a bad value is reported as `config.json: key "port":
//! ...` or `DOC_SERVE_PORT: ...`. Unknown keys and variables are warnings, not failures.
//! Nothing else in the crate reads the environment.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::error::{Error, Result};

mod file;
mod globs;

pub use globs::source_glob;
use globs::{excludes_everything, matches_no_path};

/// Project mode (one resident per project) or shared mode (one daemon for all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Project,
    Shared,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Project => "project",
            Mode::Shared => "shared",
        })
    }
}

/// How index writers in different processes are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordinationMode {
    /// An exclusive flock on `data/.index.lock` around every write batch (the default).
    FileLock,
    /// No cross-process lock: only safe when one process ever writes the index.
    None,
}

/// The validated settings of one project, in the types they are used as: a wait is a
/// `Duration` (`None` for the "0 means never" ones), a count or size of memory a
/// `usize`. They serialise under their config.json keys, in config.json's units.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub mode: Mode,
    /// Address a self-bound resident listens on. Loopback unless deliberately changed.
    pub bind_host: String,
    /// TCP port of a self-bound resident; 0 lets the OS choose.
    pub port: u16,
    /// Index directory, relative to the state dir unless absolute.
    pub data_dir: PathBuf,
    /// Log directory, relative to the state dir unless absolute.
    pub log_dir: PathBuf,
    pub shared_server_url: Option<String>,
    /// Globs of the files to index.
    pub include: Vec<String>,
    /// Globs of files never to index.
    pub exclude: Vec<String>,
    pub chunk_size: usize,
    pub chunk_overlap: usize,
    /// Time without requests after which `serve` exits (`idle_timeout_seconds`; 0 never).
    #[serde(rename = "idle_timeout_seconds", serialize_with = "secs_or_zero")]
    pub idle_timeout: Option<Duration>,
    /// How long a writer waits for the index lock before skipping a cycle.
    #[serde(rename = "lock_timeout_seconds", serialize_with = "secs")]
    pub lock_timeout: Duration,
    pub coordination_mode: CoordinationMode,
    /// Files larger than this (bytes) are not indexed.
    pub max_file_bytes: u64,
    /// Quiet time after a file change before it is indexed (`debounce_ms`).
    #[serde(rename = "debounce_ms", serialize_with = "millis")]
    pub debounce: Duration,
    /// Time between full reconciliations of the index with the disk
    /// (`reconcile_interval_seconds`; 0 never).
    #[serde(rename = "reconcile_interval_seconds", serialize_with = "secs_or_zero")]
    pub reconcile_interval: Option<Duration>,
    /// Most hits one file may contribute to a result list.
    pub max_hits_per_file: usize,
    /// Whether `query` and `index` start a resident when none runs (`mcp` always does).
    pub autostart: bool,
    /// How long `start` waits for a new resident to become healthy.
    #[serde(rename = "start_timeout_seconds", serialize_with = "secs")]
    pub start_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    #[serde(rename = "drain_timeout_seconds", serialize_with = "secs")]
    pub drain_timeout: Duration,
    /// How long a client may take to send request headers, and a request body.
    #[serde(rename = "request_timeout_seconds", serialize_with = "secs")]
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Largest request body accepted, in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// How long a one-time login code from `doc-serve open` stays good.
    #[serde(rename = "login_code_seconds", serialize_with = "secs")]
    pub login_code: Duration,
    /// How long a browser session lasts.
    #[serde(rename = "session_seconds", serialize_with = "secs")]
    pub session: Duration,
    /// Size at which logs/events.jsonl is rotated, in bytes.
    pub event_log_max_bytes: u64,
    /// Shared daemon: indexing jobs (one project each) running at once.
    pub max_concurrent_indexing: usize,
    /// Shared daemon: projects whose index and watcher are kept open at once; the
    /// least recently used one past the cap is closed (and reopened on demand).
    pub max_open_projects: usize,
    /// Shared daemon: time without requests after which a project is closed.
    #[serde(rename = "project_idle_seconds", serialize_with = "secs")]
    pub project_idle: Duration,
    /// The sentence-embedding model for search by meaning: a directory holding
    /// config.json, tokenizer.json and model.safetensors (relative to the project
    /// root), or the name of a model `doc-serve model fetch` installed; `None` is off.
    pub embedding_model: Option<String>,
    /// Threads the model embeds sections on, in the background.
    pub embedding_threads: usize,
    /// Vectors from which search by meaning reads an approximate index (HNSW) rather
    /// than comparing every vector.
    pub ann_min_sections: usize,
    /// Messages about the configuration that are not errors (unknown keys).
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Where each key was last set (a file, a variable, a flag), for error messages.
    #[serde(skip)]
    origins: std::collections::HashMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Project,
            bind_host: "127.0.0.1".into(),
            port: 0,
            data_dir: "data".into(),
            log_dir: "logs".into(),
            shared_server_url: None,
            include: ["md", "markdown", "mdx", "rst", "adoc", "txt"]
                .iter()
                .map(|e| format!("**/*.{e}"))
                .collect(),
            exclude: Vec::new(),
            chunk_size: 512,
            chunk_overlap: 50,
            idle_timeout: None,
            lock_timeout: Duration::from_secs(5),
            coordination_mode: CoordinationMode::FileLock,
            max_file_bytes: 4 << 20,
            debounce: Duration::from_millis(200),
            reconcile_interval: Some(Duration::from_secs(600)),
            max_hits_per_file: 3,
            autostart: false,
            start_timeout: Duration::from_secs(15),
            drain_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_body_bytes: 1 << 20,
            login_code: Duration::from_secs(60),
            session: Duration::from_secs(12 * 3600),
            event_log_max_bytes: 1 << 20,
            max_concurrent_indexing: 2,
            max_open_projects: 64,
            project_idle: Duration::from_secs(1800),
            embedding_model: None,
            embedding_threads: default_embedding_threads(),
            ann_min_sections: 100_000,
            warnings: Vec::new(),
            origins: std::collections::HashMap::new(),
        }
    }
}

/// Half the machine's cores, at least one: embedding runs in the background and
/// leaves the rest to searches and indexing.
fn default_embedding_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

const MAX_EMBEDDING_THREADS: usize = 256;

/// The shared daemon's TCP port unless configured otherwise (see the README, "State directory").
pub const SHARED_PORT: u16 = 45123;

/// A value as it arrives from one source.
enum Raw<'a> {
    Json(&'a Value),
    Text(&'a str),
}

/// Types a setting can have, parsed from JSON or from an environment variable's text.
trait Setting: DeserializeOwned {
    fn from_text(s: &str) -> std::result::Result<Self, String> {
        serde_json::from_value(Value::String(s.to_owned())).map_err(|e| e.to_string())
    }
}
impl Setting for String {}
impl Setting for PathBuf {}
impl Setting for Mode {}
impl Setting for CoordinationMode {}
impl Setting for Option<String> {
    fn from_text(s: &str) -> std::result::Result<Self, String> {
        Ok((!s.is_empty()).then(|| s.to_owned()))
    }
}
impl Setting for u16 {
    fn from_text(s: &str) -> std::result::Result<Self, String> {
        s.trim().parse().map_err(|e| format!("{e}: {s:?}"))
    }
}
impl Setting for u64 {
    fn from_text(s: &str) -> std::result::Result<Self, String> {
        s.trim().parse().map_err(|e| format!("{e}: {s:?}"))
    }
}
impl Setting for usize {
    fn from_text(s: &str) -> std::result::Result<Self, String> {
        s.trim().parse().map_err(|e| format!("{e}: {s:?}"))
    }
}
impl Setting for bool {
    /// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
    fn from_text(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(format!("expected true or false: {s:?}")),
        }
    }
}
impl Setting for Vec<String> {
    /// A comma-separated list.
    fn from_text(s: &str) -> std::result::Result<Self, String> {
        Ok(s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect())
    }
}

fn parse<T: Setting>(raw: Raw) -> std::result::Result<T, String> {
    match raw {
        Raw::Json(v) => T::deserialize(v).map_err(|e| e.to_string()),
        Raw::Text(s) => T::from_text(s),
    }
}

/// The longest wait a setting may ask for. Far longer is surely a mistake, and would
/// overflow where it is added to the current time or to another wait.
const MAX_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// A wait given as a whole number of `unit`s (`Duration::from_secs`, `from_millis`).
fn wait(raw: Raw, unit: fn(u64) -> Duration) -> std::result::Result<Duration, String> {
    let n: u64 = parse(raw)?;
    let wait = unit(n);
    if wait > MAX_WAIT {
        return Err(format!("{n} is longer than a year: give a smaller value"));
    }
    Ok(wait)
}

/// A wait in seconds where 0 means never.
fn wait_or_never(raw: Raw) -> std::result::Result<Option<Duration>, String> {
    let wait = wait(raw, Duration::from_secs).map_err(|e| format!("{e}, or 0 for never"))?;
    Ok((!wait.is_zero()).then_some(wait))
}

fn secs<S: Serializer>(wait: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(wait.as_secs())
}

fn secs_or_zero<S: Serializer>(
    wait: &Option<Duration>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(wait.map_or(0, |w| w.as_secs()))
}

fn millis<S: Serializer>(wait: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    // At most MAX_WAIT, so it fits.
    s.serialize_u64(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
}

/// Most bytes a settings file may hold.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// A settings file's bytes; `None` when there is none (see [`fsutil::read_small`]).
pub fn read_file(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    crate::fsutil::read_small(path, MAX_FILE_BYTES)
}

impl Config {
    /// Sets one key; `Ok(false)` when the key is unknown.
    fn set(&mut self, key: &str, raw: Raw) -> std::result::Result<bool, String> {
        match key {
            "mode" => self.mode = parse(raw)?,
            "bind_host" => self.bind_host = parse(raw)?,
            "port" => self.port = parse(raw)?,
            "data_dir" => self.data_dir = parse(raw)?,
            "log_dir" => self.log_dir = parse(raw)?,
            "shared_server_url" => self.shared_server_url = parse(raw)?,
            "include" => self.include = parse(raw)?,
            "exclude" => self.exclude = parse(raw)?,
            "chunk_size" => self.chunk_size = parse(raw)?,
            "chunk_overlap" => self.chunk_overlap = parse(raw)?,
            "idle_timeout_seconds" => self.idle_timeout = wait_or_never(raw)?,
            "lock_timeout_seconds" => self.lock_timeout = wait(raw, Duration::from_secs)?,
            "coordination_mode" => self.coordination_mode = parse(raw)?,
            "max_file_bytes" => self.max_file_bytes = parse(raw)?,
            "debounce_ms" => self.debounce = wait(raw, Duration::from_millis)?,
            "reconcile_interval_seconds" => self.reconcile_interval = wait_or_never(raw)?,
            "max_hits_per_file" => self.max_hits_per_file = parse(raw)?,
            "autostart" => self.autostart = parse(raw)?,
            "start_timeout_seconds" => self.start_timeout = wait(raw, Duration::from_secs)?,
            "drain_timeout_seconds" => self.drain_timeout = wait(raw, Duration::from_secs)?,
            "request_timeout_seconds" => self.request_timeout = wait(raw, Duration::from_secs)?,
            "max_connections" => self.max_connections = parse(raw)?,
            "max_body_bytes" => self.max_body_bytes = parse(raw)?,
            "login_code_seconds" => self.login_code = wait(raw, Duration::from_secs)?,
            "session_seconds" => self.session = wait(raw, Duration::from_secs)?,
            "event_log_max_bytes" => self.event_log_max_bytes = parse(raw)?,
            "max_concurrent_indexing" => self.max_concurrent_indexing = parse(raw)?,
            "max_open_projects" => self.max_open_projects = parse(raw)?,
            "project_idle_seconds" => self.project_idle = wait(raw, Duration::from_secs)?,
            "embedding_model" => self.embedding_model = parse(raw)?,
            "embedding_threads" => self.embedding_threads = parse(raw)?,
            "ann_min_sections" => self.ann_min_sections = parse(raw)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Reads config.json (if present), then the environment, then `flags`, and validates.
    pub fn load(config_file: &Path, env: &Environment, flags: &Flags) -> Result<Config> {
        Config::default().load_over(config_file, env, flags)
    }

    /// The shared daemon's settings: as [`Config::load`] from shared_config.json, with
    /// the daemon's defaults (mode shared, port [`SHARED_PORT`]).
    pub fn load_shared(config_file: &Path, env: &Environment, flags: &Flags) -> Result<Config> {
        let defaults = Config {
            mode: Mode::Shared,
            port: SHARED_PORT,
            ..Config::default()
        };
        defaults.load_over(config_file, env, flags)
    }

    fn load_over(self, config_file: &Path, env: &Environment, flags: &Flags) -> Result<Config> {
        let mut config = self;
        config.apply_file(config_file)?;
        config.apply_env(env)?;
        for (key, value) in &flags.0 {
            // Flags are named as their keys, but for `--idle-timeout`.
            let flag = match *key {
                "idle_timeout_seconds" => "--idle-timeout".to_owned(),
                key => format!("--{}", key.replace('_', "-")),
            };
            config
                .set(key, Raw::Text(value))
                .map_err(|message| Error::Setting {
                    name: flag.clone(),
                    message,
                })?;
            config.origins.insert(key.to_string(), flag);
        }
        config.validate()?;
        Ok(config)
    }

    fn apply_file(&mut self, path: &Path) -> Result<()> {
        let bytes = match read_file(path) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(()),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let err = |message: String| Error::Config {
            path: path.to_path_buf(),
            message,
        };
        for (key, value) in file::parse(&bytes).map_err(err)? {
            let known = self
                .set(&key, Raw::Json(&value))
                .map_err(|e| err(format!("key \"{key}\": {e}")))?;
            if known {
                self.origins.insert(key.clone(), path.display().to_string());
            } else if !key.starts_with('$') {
                self.warnings
                    .push(format!("{}: unknown key \"{key}\" ignored", path.display()));
            }
        }
        Ok(())
    }

    fn apply_env(&mut self, env: &Environment) -> Result<()> {
        for (name, value) in &env.vars {
            let Some(key) = name.strip_prefix("DOC_SERVE_") else {
                continue;
            };
            if NON_CONFIG_VARS.contains(&name.as_str()) {
                continue;
            }
            let key = key.to_ascii_lowercase();
            let known = self
                .set(&key, Raw::Text(value))
                .map_err(|message| Error::Setting {
                    name: name.clone(),
                    message,
                })?;
            if known {
                self.origins.insert(key, name.clone());
            } else {
                self.warnings
                    .push(format!("unknown environment variable {name} ignored"));
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        // The setting's name, and where it was set unless it is the default.
        let bad = |name: &str, message: String| {
            let name = match self.origins.get(name) {
                Some(origin) => format!("{name} (set in {origin})"),
                None => name.into(),
            };
            Err(Error::Setting { name, message })
        };
        if self.bind_host != "localhost" && self.bind_host.parse::<IpAddr>().is_err() {
            return bad(
                "bind_host",
                format!("{:?} is not an IP address or \"localhost\"", self.bind_host),
            );
        }
        if self.include.is_empty() {
            return bad(
                "include",
                "must name at least one glob (with none, nothing is a source and the index \
                 would be emptied)"
                    .into(),
            );
        }
        for (key, globs) in [("include", &self.include), ("exclude", &self.exclude)] {
            for glob in globs {
                if let Err(e) = source_glob(glob) {
                    return bad(key, format!("bad glob {glob:?}: {}", e.kind()));
                }
                if let Some(why) = matches_no_path(glob) {
                    return bad(key, format!("{glob:?} can match no file: {why}"));
                }
            }
        }
        if let Some(culprit) = excludes_everything(&self.include, &self.exclude) {
            let what = match culprit {
                Some(glob) => format!("{glob:?} excludes"),
                None => "together, its globs exclude".into(),
            };
            return bad(
                "exclude",
                format!(
                    "{what} every file that include ({}) takes, so nothing would be \
                     indexed: narrow it or remove it",
                    self.include.join(", ")
                ),
            );
        }
        for (name, dir) in [("data_dir", &self.data_dir), ("log_dir", &self.log_dir)] {
            if dir.as_os_str().is_empty() {
                return bad(name, "must not be empty (it is a directory)".into());
            }
        }
        if self.chunk_size == 0 || self.chunk_overlap >= self.chunk_size {
            // Blame the one that was set, when only one was.
            let set = |k: &str| self.origins.contains_key(k);
            let key = if set("chunk_size") && !set("chunk_overlap") {
                "chunk_size"
            } else {
                "chunk_overlap"
            };
            return bad(
                key,
                format!(
                    "chunk_overlap ({}) must be smaller than chunk_size ({}), and chunk_size above 0",
                    self.chunk_overlap, self.chunk_size
                ),
            );
        }
        for (name, zero) in [
            ("start_timeout_seconds", self.start_timeout.is_zero()),
            ("request_timeout_seconds", self.request_timeout.is_zero()),
            ("max_connections", self.max_connections == 0),
            ("max_body_bytes", self.max_body_bytes == 0),
            ("login_code_seconds", self.login_code.is_zero()),
            ("session_seconds", self.session.is_zero()),
            ("max_file_bytes", self.max_file_bytes == 0),
            ("max_hits_per_file", self.max_hits_per_file == 0),
            ("max_concurrent_indexing", self.max_concurrent_indexing == 0),
            ("max_open_projects", self.max_open_projects == 0),
            ("embedding_threads", self.embedding_threads == 0),
        ] {
            if zero {
                return bad(name, "must be above 0".into());
            }
        }
        if self.embedding_threads > MAX_EMBEDDING_THREADS {
            return bad(
                "embedding_threads",
                format!("must be at most {MAX_EMBEDDING_THREADS}"),
            );
        }
        if self
            .embedding_model
            .as_deref()
            .is_some_and(|m| m.trim().is_empty())
        {
            return bad(
                "embedding_model",
                "must name a model directory or a known model (null turns search by meaning off)"
                    .into(),
            );
        }
        // The most a tokio semaphore holds (more panics).
        let most = tokio::sync::Semaphore::MAX_PERMITS;
        if self.max_connections > most {
            return bad("max_connections", format!("must be at most {most}"));
        }
        Ok(())
    }

    /// True when the configured bind address is a loopback address.
    pub fn binds_loopback(&self) -> bool {
        self.bind_host == "localhost"
            || self
                .bind_host
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// `DOC_SERVE_*` variables that are not config keys.
pub const NON_CONFIG_VARS: &[&str] = &[
    "DOC_SERVE_PROJECT",
    "DOC_SERVE_LOG",
    "DOC_SERVE_MODEL_DIR",
    "DOC_SERVE_HF_ENDPOINT",
];

/// The part of the process environment doc-serve reads, captured once.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Every `DOC_SERVE_*` variable.
    pub vars: BTreeMap<String, String>,
    pub home: Option<PathBuf>,
    /// `XDG_CONFIG_HOME`, else `~/.config`: where the instance registry and user units live.
    pub config_home: Option<PathBuf>,
    /// `XDG_RUNTIME_DIR` (systemd's `%t` in user units): where instance sockets live.
    pub runtime_dir: Option<PathBuf>,
    /// NO_COLOR, TERM and what tells a terminal that shows hyperlinks.
    pub terminal: crate::terminal::TermEnv,
}

impl Environment {
    /// Captures the process environment. A `DOC_SERVE_*` value that is not UTF-8 is an
    /// error naming the variable.
    pub fn capture() -> Result<Environment> {
        let mut vars = BTreeMap::new();
        for (name, value) in std::env::vars_os() {
            let Some(name) = name.to_str().filter(|n| n.starts_with("DOC_SERVE_")) else {
                continue;
            };
            let value = value.into_string().map_err(|_| Error::Setting {
                name: name.into(),
                message: "value is not valid UTF-8".into(),
            })?;
            vars.insert(name.to_owned(), value);
        }
        // The XDG base directory spec says relative values are to be ignored.
        let dir = |name: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let home = dir("HOME");
        let config_home =
            dir("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
        Ok(Environment {
            vars,
            home,
            config_home,
            runtime_dir: dir("XDG_RUNTIME_DIR"),
            terminal: crate::terminal::TermEnv::capture(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Settings given as command-line flags, by config key.
#[derive(Debug, Default, Clone)]
pub struct Flags(pub Vec<(&'static str, String)>);

impl Flags {
    pub fn set(&mut self, key: &'static str, value: Option<impl ToString>) {
        if let Some(v) = value {
            self.0.push((key, v.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(json: Option<&str>, env: &[(&str, &str)]) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        if let Some(j) = json {
            std::fs::write(&file, j).unwrap();
        }
        let env = Environment {
            vars: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Environment::default()
        };
        Config::load(&file, &env, &Flags::default())
    }

    #[test]
    fn layers_override_in_order() {
        let c = load(Some(r#"{"port": 7000, "idle_timeout_seconds": 30}"#), &[]).unwrap();
        assert_eq!(
            (c.port, c.idle_timeout),
            (7000, Some(Duration::from_secs(30)))
        );
        let c = load(Some(r#"{"port": 7000}"#), &[("DOC_SERVE_PORT", "7001")]).unwrap();
        assert_eq!(c.port, 7001);
        let dir = tempfile::tempdir().unwrap();
        let env = Environment {
            vars: [("DOC_SERVE_PORT".to_string(), "7001".to_string())].into(),
            ..Environment::default()
        };
        let mut flags = Flags::default();
        flags.set("port", Some(7002));
        let c = Config::load(&dir.path().join("none.json"), &env, &flags).unwrap();
        assert_eq!(c.port, 7002);
    }

    #[test]
    fn wrong_type_names_file_and_key() {
        let err = load(Some(r#"{"port": "high"}"#), &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.json") && err.contains("\"port\""),
            "{err}"
        );
        let err = load(Some(r#"{"port": 70000}"#), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"port\""), "{err}");
        let err = load(Some("{\"port\": 1,"), &[]).unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("not valid JSON"),
            "{err}"
        );
        let err = load(Some("[]"), &[]).unwrap_err().to_string();
        assert!(err.contains("JSON object"), "{err}");
        let err = load(None, &[("DOC_SERVE_PORT", "x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("DOC_SERVE_PORT"), "{err}");
        let err = load(Some(r#"{"mode": "solo"}"#), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"mode\""), "{err}");
    }

    #[test]
    fn waits_are_durations_in_their_keys_units() {
        let c = load(
            Some(r#"{"debounce_ms": 250, "idle_timeout_seconds": 0, "start_timeout_seconds": 7}"#),
            &[("DOC_SERVE_RECONCILE_INTERVAL_SECONDS", "0")],
        )
        .unwrap();
        assert_eq!(c.debounce, Duration::from_millis(250));
        assert_eq!((c.idle_timeout, c.reconcile_interval), (None, None));
        assert_eq!(c.start_timeout, Duration::from_secs(7));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["debounce_ms"], 250);
        assert_eq!(v["idle_timeout_seconds"], 0);
        assert_eq!(v["reconcile_interval_seconds"], 0);
        assert_eq!(v["start_timeout_seconds"], 7);
        assert_eq!(v["project_idle_seconds"], 1800);
        assert!(v.get("debounce").is_none(), "{v}");
    }

    #[test]
    fn waits_past_a_year_name_the_key() {
        let year = 365 * 24 * 3600;
        assert!(
            load(
                None,
                &[("DOC_SERVE_LOCK_TIMEOUT_SECONDS", &year.to_string())]
            )
            .is_ok()
        );
        let too_long = (year + 1).to_string();
        for key in [
            "idle_timeout_seconds",
            "lock_timeout_seconds",
            "reconcile_interval_seconds",
            "start_timeout_seconds",
            "drain_timeout_seconds",
            "request_timeout_seconds",
            "project_idle_seconds",
            "login_code_seconds",
            "session_seconds",
        ] {
            let var = format!("DOC_SERVE_{}", key.to_ascii_uppercase());
            let e = load(None, &[(&var, &too_long)]).unwrap_err().to_string();
            assert!(e.contains(&var) && e.contains("longer than a year"), "{e}");
            let e = load(Some(&format!("{{\"{key}\": {}}}", u64::MAX)), &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("\"{key}\"")), "{e}");
        }
        let e = load(Some(r#"{"debounce_ms": 31536000001}"#), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"debounce_ms\"") && e.contains("a year"), "{e}");
        let e = load(
            None,
            &[("DOC_SERVE_IDLE_TIMEOUT_SECONDS", &u64::MAX.to_string())],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("0 for never"), "{e}");
        let e = load(
            None,
            &[("DOC_SERVE_MAX_CONNECTIONS", &u64::MAX.to_string())],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("max_connections (set in DOC_SERVE_MAX_CONNECTIONS)"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_warn() {
        let c = load(
            Some(r#"{"prot": 1, "$schema": "x"}"#),
            &[("DOC_SERVE_PROT", "1")],
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("\"prot\""));
        assert!(c.warnings[1].contains("DOC_SERVE_PROT"));
    }

    #[test]
    fn env_lists_and_validation() {
        let c = load(None, &[("DOC_SERVE_INCLUDE", "*.md, *.rst")]).unwrap();
        assert_eq!(c.include, ["*.md", "*.rst"]);
        assert!(load(Some(r#"{"bind_host": "example.com"}"#), &[]).is_err());
        assert!(load(Some(r#"{"chunk_size": 10, "chunk_overlap": 10}"#), &[]).is_err());
        let e = load(None, &[("DOC_SERVE_INCLUDE", "")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("include (set in DOC_SERVE_INCLUDE)"), "{e}");
        assert!(
            load(None, &[("DOC_SERVE_BIND_HOST", "::1")])
                .unwrap()
                .binds_loopback()
        );
        assert!(
            !load(None, &[("DOC_SERVE_BIND_HOST", "0.0.0.0")])
                .unwrap()
                .binds_loopback()
        );
    }

    #[test]
    fn file_encoding_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        let load = |bytes: &[u8]| {
            std::fs::write(&file, bytes).unwrap();
            Config::load(&file, &Environment::default(), &Flags::default())
        };
        assert_eq!(load(b"\xEF\xBB\xBF{\"port\": 7000}").unwrap().port, 7000);
        let err = load(b"\xFF\xFE{\x00}\x00").unwrap_err().to_string();
        assert!(
            err.contains("UTF-16") && err.contains("config.json"),
            "{err}"
        );
        let err = load(b"{\"port\": \xC3}").unwrap_err().to_string();
        assert!(err.contains("not valid UTF-8 (at byte 9)"), "{err}");
        let err = load(b"{\"port\": 1,\n \"port\": 2}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"port\" is given twice") && err.contains("line 2"),
            "{err}"
        );
        assert!(!err.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn globs_are_checked() {
        let err = |json: &str| load(Some(json), &[]).unwrap_err().to_string();
        let e = err(r#"{"include": ["[z-a]"]}"#);
        assert!(e.contains("include (set in") && e.contains("[z-a]"), "{e}");
        for (json, needle) in [
            (r#"{"include": ["./docs/*.md"]}"#, "write \"docs/*.md\""),
            (r#"{"include": ["/docs/*.md"]}"#, "write \"docs/*.md\""),
            (r#"{"exclude": ["drafts/"]}"#, "\"drafts/**\""),
            (r#"{"exclude": ["a//b"]}"#, "empty"),
            (r#"{"include": ["../x/*.md"]}"#, "\"..\""),
            (r#"{"include": [""]}"#, "empty glob"),
        ] {
            assert!(err(json).contains(needle), "{json}: {}", err(json));
        }
        for everything in ["***", "**", "*", "**/*", "{a,**}", "?*"] {
            let json = format!(r#"{{"exclude": ["drafts/**", "{everything}"]}}"#);
            let e = err(&json);
            assert!(
                e.contains(&format!("{everything:?} excludes every file")),
                "{json}: {e}"
            );
        }
        let e =
            err(r#"{"include": ["docs/**/*.md", "*.txt"], "exclude": ["docs/**", "**/*.TXT"]}"#);
        assert!(e.contains("together"), "{e}");
        for fine in [
            r#"{"exclude": ["drafts/**", "**/*.txt"]}"#,
            // Top-level files stay, and so does what the other alternative takes.
            r#"{"exclude": ["*/**"]}"#,
            r#"{"include": ["{docs,manual}/**/*.md"], "exclude": ["docs/**"]}"#,
            r#"{"include": ["docs/**/*.md"], "exclude": ["docs/old/**"]}"#,
            r#"{"include": ["**/[!_]*.md"], "exclude": ["**"]}"#,
        ] {
            assert!(load(Some(fine), &[]).is_ok(), "{fine}");
        }
    }
}
