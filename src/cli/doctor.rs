//! `doc-serve doctor`: checks a project's set-up and says how to fix what is wrong.
//!
//! Reads only: it creates, removes and rewrites nothing of doc-serve's (the lifetime
//! lock is only tested, as `status` does; opening the index for reading has tantivy
//! create its `.tantivy-meta.lock` if missing). Each check is ok, warn (works, but
//! not as well as it could), fail (something does not work) or skip (it depends on a
//! check that failed).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;

use nix::unistd::{AccessFlags, access};
use serde::Serialize;

use super::{Context, client_runtime, output};
use crate::config::{Config, CoordinationMode, Flags, Mode};
use crate::discovery::runtime::RuntimeFile;
use crate::discovery::{self, Resident};
use crate::engine::Engine;
use crate::error::exit;
use crate::ingest::sync::{chunk_options, plan};
use crate::ingest::walk::{Skipped, SourceFile, Sources};
use crate::project::Project;
use crate::supervisor::registry::{Registry, Supervisor};
use crate::supervisor::{launchd, systemd};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    status: Status,
    detail: String,
    /// What to run or change, when it is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

#[derive(Default)]
struct Report(Vec<Check>);

impl Report {
    fn add(
        &mut self,
        check: &'static str,
        status: Status,
        detail: impl Into<String>,
    ) -> &mut Check {
        self.0.push(Check {
            check,
            status,
            detail: detail.into(),
            fix: None,
        });
        self.0.last_mut().expect("just pushed")
    }

    fn skip(&mut self, checks: &[&'static str], why: &str) {
        for check in checks {
            self.add(check, Status::Skip, format!("not checked: {why}"));
        }
    }

    fn count(&self, status: Status) -> usize {
        self.0.iter().filter(|c| c.status == status).count()
    }
}

impl Check {
    fn fix(&mut self, fix: impl Into<String>) {
        self.fix = Some(fix.into());
    }
}

pub fn run(ctx: &Context, json: bool) -> anyhow::Result<i32> {
    let mut report = Report::default();
    if let Some(why) = ctx.project.too_broad(ctx.env.home.as_deref()) {
        // Walking it would read the whole home directory: nothing else is checked.
        report
            .add("project", Status::Fail, why)
            .fix("run doc-serve in a project, or name this one with --path");
        report.skip(
            &[
                "state dir",
                "config",
                "supervisor",
                "resident",
                "sources",
                "index",
            ],
            "the project root is refused",
        );
    } else if check_state_dir(&ctx.project, &mut report) {
        let config = check_config(ctx, &mut report);
        let listening = check_supervisor(ctx, &mut report);
        let running = check_resident(ctx, config.as_ref(), listening, &mut report)?;
        match &config {
            Some(config) => {
                let found = check_sources(ctx, config, &mut report);
                check_index(ctx, config, found, running, &mut report);
            }
            None => report.skip(&["sources", "index"], "the settings do not load"),
        }
    } else {
        report.skip(
            &["config", "supervisor", "resident", "sources", "index"],
            "the state dir is not usable",
        );
    }
    let (fails, warns) = (report.count(Status::Fail), report.count(Status::Warn));
    let summary = serde_json::json!({
        "project_root": ctx.project.root,
        "ok": fails == 0,
        "checks": report.0,
    });
    output::emit(json, &summary, |out| {
        writeln!(out, "doc-serve doctor: {}", ctx.project.root.display())?;
        for c in &report.0 {
            let status = match c.status {
                Status::Ok => "ok",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            writeln!(out, "  {status:<5} {:<10} {}", c.check, c.detail)?;
            if let Some(fix) = &c.fix {
                writeln!(out, "  {:<5} {:<10} fix: {fix}", "", "")?;
            }
        }
        match (fails, warns) {
            (0, 0) => writeln!(out, "everything looks right"),
            _ => writeln!(out, "{fails} failed, {warns} to look at"),
        }
    })?;
    Ok(if fails == 0 { exit::OK } else { exit::NOTHING })
}

/// `n` and the noun, plural unless `n` is 1.
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Why doc-serve could not make `dir` and write in it, if it could not: `dir`, or else
/// its nearest existing parent, must be a directory this user can write and enter.
fn unwritable(dir: &Path) -> Option<String> {
    let mut at = dir;
    loop {
        match std::fs::metadata(at) {
            Ok(meta) if !meta.is_dir() => {
                return Some(format!("{} is not a directory", at.display()));
            }
            Ok(_) if access(at, AccessFlags::W_OK | AccessFlags::X_OK).is_err() => {
                return Some(format!("{} cannot be written", at.display()));
            }
            Ok(_) => return None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match at.parent() {
                Some(parent) => at = parent,
                None => return Some(format!("{} does not exist", dir.display())),
            },
            Err(e) => return Some(format!("cannot read {}: {e}", at.display())),
        }
    }
}

/// The state dir is, or can be made, a directory this user reads and writes. Returns
/// false when it cannot: nothing that lives in it can be checked then.
fn check_state_dir(project: &Project, report: &mut Report) -> bool {
    let dir = &project.state_dir;
    let fix = format!(
        "give {} to this user (chown, chmod u+rwx), or move it aside",
        dir.display()
    );
    if let Some(why) = unwritable(dir) {
        report.add("state dir", Status::Fail, why).fix(fix);
        return false;
    }
    if !dir.exists() {
        report.add(
            "state dir",
            Status::Ok,
            format!(
                "{} does not exist yet: start, index or init creates it",
                dir.display()
            ),
        );
        return true;
    }
    if access(dir, AccessFlags::R_OK).is_err() {
        report
            .add(
                "state dir",
                Status::Fail,
                format!("{} cannot be read", dir.display()),
            )
            .fix(fix);
        return false;
    }
    report.add("state dir", Status::Ok, dir.display().to_string());
    true
}

/// The settings load and validate; `None` when they do not.
fn check_config(ctx: &Context, report: &mut Report) -> Option<Config> {
    let file = ctx.project.config_file();
    let from = if file.exists() {
        file.display().to_string()
    } else {
        "defaults (no config.json)".into()
    };
    let vars: Vec<&str> = ctx
        .env
        .vars
        .keys()
        .map(String::as_str)
        .filter(|k| !matches!(*k, "DOC_SERVE_LOG" | "DOC_SERVE_PROJECT"))
        .collect();
    let over = if vars.is_empty() {
        String::new()
    } else {
        format!("; set in the environment: {}", vars.join(", "))
    };
    let config = match ctx.load_config(&Flags::default()) {
        Ok(config) => config,
        Err(e) => {
            report
                .add("config", Status::Fail, format!("{e:#}"))
                .fix("correct the setting named above (the README's Configuration lists them)");
            return None;
        }
    };
    if config.warnings.is_empty() {
        report.add("config", Status::Ok, format!("{from}{over}"));
    } else {
        report
            .add("config", Status::Warn, config.warnings.join("; "))
            .fix(format!("edit {from}{over}"));
    }
    if config.coordination_mode == CoordinationMode::None {
        report
            .add(
                "config",
                Status::Warn,
                "coordination_mode is \"none\": two processes writing the index at once \
                 (a resident and `doc-serve index`, two assistants) can corrupt it",
            )
            .fix("remove coordination_mode from config.json (the default locks)");
    }
    Some(config)
}

/// A supervisor instance installed for the project: its socket listens and its unit
/// runs a binary that exists. Returns whether an instance's socket listens.
fn check_supervisor(ctx: &Context, report: &mut Report) -> bool {
    let Some(config_home) = ctx.env.config_home.as_deref() else {
        report.add(
            "supervisor",
            Status::Skip,
            "not checked: neither XDG_CONFIG_HOME nor HOME is set",
        );
        return false;
    };
    let file = Registry::file(config_home);
    let registry = match Registry::load(&file) {
        Ok(registry) => registry,
        Err(e) => {
            report
                .add("supervisor", Status::Fail, format!("{e:#}"))
                .fix(format!(
                    "move {} aside; `doc-serve install` then registers instances anew",
                    file.display()
                ));
            return false;
        }
    };
    let Some(instance) = registry
        .instances
        .into_values()
        .find(|i| i.root == ctx.project.root)
    else {
        report.add(
            "supervisor",
            Status::Ok,
            "none installed (optional: `doc-serve install systemd` or `install launchd`)",
        );
        return false;
    };
    let slug = &instance.slug;
    if instance.supervisor == Supervisor::Launchd {
        let home = ctx.env.home.as_deref().unwrap_or(Path::new("~"));
        let plist = launchd::agent_path(home, slug);
        if plist.exists() {
            report.add(
                "supervisor",
                Status::Ok,
                format!("launchd instance {slug:?}: {}", plist.display()),
            );
            return true;
        }
        report
            .add(
                "supervisor",
                Status::Fail,
                format!(
                    "launchd instance {slug:?} has no agent at {}",
                    plist.display()
                ),
            )
            .fix("doc-serve install launchd");
        return false;
    }
    let socket = systemd::socket_unit(slug);
    let service = systemd::service_unit(slug);
    if let Some(exe) = systemd::service_program(config_home, &service).filter(|exe| !exe.exists()) {
        report
            .add(
                "supervisor",
                Status::Fail,
                format!(
                    "{service} would run {}, which does not exist",
                    exe.display()
                ),
            )
            .fix("doc-serve install systemd --refresh");
        return false;
    }
    if !systemd::systemctl(&["is-active", "--quiet", &socket]).check() {
        report
            .add(
                "supervisor",
                Status::Warn,
                format!("{socket} is not listening: nothing starts the resident on demand"),
            )
            .fix(format!("systemctl --user enable --now {socket}"));
        return false;
    }
    if !systemd::dead_sockets([&instance]).is_empty() {
        report
            .add(
                "supervisor",
                Status::Fail,
                format!("{socket} is active but its socket file is gone"),
            )
            .fix("doc-serve install systemd --refresh");
        return false;
    }
    report.add(
        "supervisor",
        Status::Ok,
        format!("{socket} listens on {}", instance.socket_path.display()),
    );
    true
}

/// The resident (or, for a project in shared mode, the shared daemon): running and
/// answering, or stopped without stale files; its runtime.json private. Returns
/// whether one runs.
fn check_resident(
    ctx: &Context,
    config: Option<&Config>,
    listening: bool,
    report: &mut Report,
) -> anyhow::Result<bool> {
    // Not `Context::daemon_of`: that loads the settings again, and they may not load.
    let daemon = match config {
        Some(c) if c.mode == Mode::Shared && !ctx.project.is_shared_daemon() => {
            Some(Context::shared_daemon(ctx.env.clone())?)
        }
        _ => None,
    };
    let project = &daemon.as_ref().unwrap_or(ctx).project;
    let what = if daemon.is_some() {
        "the shared daemon"
    } else {
        "the resident"
    };
    let found = match client_runtime()?.block_on(discovery::inspect(project)) {
        Ok(found) => found,
        Err(e) => {
            report
                .add("resident", Status::Fail, format!("{e:#}"))
                .fix(format!(
                    "give {} to this user (chown, chmod u+rw)",
                    project.lock_file().display()
                ));
            return Ok(false);
        }
    };
    match &found.resident {
        Resident::Running(s) => {
            let this = env!("CARGO_PKG_VERSION");
            let detail = format!(
                "{what} runs: {} (pid {}, {} activation, version {})",
                s.base_url, s.pid, s.activation, s.version
            );
            if s.version == this {
                report.add("resident", Status::Ok, detail);
            } else {
                report
                    .add(
                        "resident",
                        Status::Warn,
                        format!("{detail}, but this doc-serve is {this}"),
                    )
                    .fix("doc-serve stop (the next request starts this version)");
            }
        }
        Resident::Stopped => {
            let next = if daemon.is_none() && listening {
                "its supervisor's socket starts it"
            } else if daemon.is_none() && config.is_some_and(|c| c.autostart) {
                "`doc-serve query`, `index` or an assistant's MCP server starts it"
            } else {
                "`doc-serve start` or an assistant's MCP server starts it (`query` runs \
                 on its own)"
            };
            report.add(
                "resident",
                Status::Ok,
                format!("{what} is not running; {next}"),
            );
        }
        Resident::Foreign { root, pid } => {
            report
                .add(
                    "resident",
                    Status::Fail,
                    discovery::shared_state_dir(project, root, *pid),
                )
                .fix("give this project a state dir of its own");
        }
        Resident::Starting {
            pid,
            runtime,
            stopped,
        } => {
            let pid = pid.map_or("a process".into(), |p| format!("pid {p}"));
            let (status, fix) = if *stopped {
                (
                    Status::Fail,
                    "`doc-serve stop` (it sends SIGCONT with SIGTERM)",
                )
            } else {
                (
                    Status::Warn,
                    "wait for it to start; if this stays, `doc-serve stop`",
                )
            };
            let state = if *stopped { " (stopped)" } else { "" };
            report
                .add(
                    "resident",
                    status,
                    format!("{pid}{state} holds the lifetime lock, but runtime.json is {runtime}"),
                )
                .fix(fix);
        }
        Resident::Unresponsive { state, why } => {
            report
                .add(
                    "resident",
                    Status::Fail,
                    format!("{what} (pid {}) does not answer: {why}", state.pid),
                )
                .fix("doc-serve stop --force");
        }
    }
    for f in &found.stale {
        report
            .add(
                "resident",
                Status::Warn,
                format!("stale: {}: {}", f.path.display(), f.reason),
            )
            .fix("doc-serve stop (removes stale files; `start` does too)");
    }
    if let RuntimeFile::Valid(_) = &found.runtime {
        check_token(project, report);
    }
    Ok(matches!(found.resident, Resident::Running(_)))
}

/// runtime.json holds the bearer token: doc-serve writes it 0600 in a 0700 dir.
fn check_token(project: &Project, report: &mut Report) {
    let mode = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.permissions().mode());
    let runtime = project.runtime_file();
    let (file, dir) = (mode(&runtime), mode(&project.state_dir));
    // Group or others can read the file, and enter the directory to reach it.
    let exposed =
        (file & 0o040 != 0 && dir & 0o010 != 0) || (file & 0o004 != 0 && dir & 0o001 != 0);
    if exposed {
        report
            .add(
                "resident",
                Status::Fail,
                format!(
                    "{} is mode {:04o} in a directory of mode {:04o}: other users can read its bearer token",
                    runtime.display(),
                    file & 0o777,
                    dir & 0o777
                ),
            )
            .fix(format!("chmod 600 {}", runtime.display()));
    } else if file & 0o077 != 0 {
        report
            .add(
                "resident",
                Status::Warn,
                format!(
                    "{} is mode {:04o}; only its directory keeps other users from its token",
                    runtime.display(),
                    file & 0o777
                ),
            )
            .fix(format!("chmod 600 {}", runtime.display()));
    }
}

/// What the walk found, for the index check.
struct Found {
    sources: Sources,
    files: Vec<SourceFile>,
    /// Some files or directories could not be read: the walk may have missed sources.
    unreadable: bool,
}

/// The files to index; `None` when the settings make no walk possible.
fn check_sources(ctx: &Context, config: &Config, report: &mut Report) -> Option<Found> {
    let sources = match Sources::new(&ctx.project.root, &ctx.project.state_dir, config) {
        Ok(s) => s,
        Err(e) => {
            report
                .add("sources", Status::Fail, format!("{e:#}"))
                .fix("correct include or exclude in config.json");
            return None;
        }
    };
    let (files, skipped) = sources.walk();
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    let detail = format!(
        "{} to index ({:.1} MB) matching {}",
        count(files.len(), "file"),
        bytes as f64 / 1e6,
        config.include.join(", ")
    );
    // A count of `list` and the first of them.
    let note = |list: &[&Skipped], what: &str| match list.first() {
        Some(first) => format!(
            "; {} {what}, e.g. {}: {}",
            count(list.len(), "path"),
            first.path,
            first.reason
        ),
        None => String::new(),
    };
    let unreadable: Vec<&Skipped> = skipped.iter().filter(|s| s.unreadable).collect();
    if !unreadable.is_empty() {
        report
            .add(
                "sources",
                Status::Warn,
                detail + &note(&unreadable, "cannot be read"),
            )
            .fix("give this user read access to them: what is under them is not indexed");
    } else if files.is_empty() {
        report
            .add("sources", Status::Warn, detail)
            .fix("check include and exclude in config.json, and the ignore files");
    } else {
        let all: Vec<&Skipped> = skipped.iter().collect();
        report.add("sources", Status::Ok, detail + &note(&all, "skipped"));
    }
    Some(Found {
        sources,
        files,
        unreadable: !unreadable.is_empty(),
    })
}

/// The index opens, and holds what is on disk.
fn check_index(
    ctx: &Context,
    config: &Config,
    found: Option<Found>,
    running: bool,
    report: &mut Report,
) {
    let data_dir = ctx.project.state_path(&config.data_dir);
    if let Some(why) = unwritable(&data_dir) {
        report
            .add("index", Status::Fail, format!("data_dir: {why}"))
            .fix("set data_dir to a directory this user can write, or fix its owner and mode");
        return;
    }
    let engine = match Engine::open_existing(&data_dir) {
        Ok(Some(engine)) => engine,
        Ok(None) => {
            let detail = format!(
                "no index of this doc-serve version in {} yet",
                data_dir.display()
            );
            if running {
                report.add(
                    "index",
                    Status::Ok,
                    detail + "; the resident is building it",
                );
            } else {
                report
                    .add("index", Status::Warn, detail)
                    .fix("doc-serve index");
            }
            return;
        }
        Err(e) => {
            report
                .add("index", Status::Fail, format!("cannot open the index: {e}"))
                .fix(format!(
                    "if its files are this user's: stop every doc-serve on the project, move \
                     {} aside, then `doc-serve index` (never delete tantivy's lock files by \
                     hand)",
                    data_dir.display()
                ));
            return;
        }
    };
    let (manifest, (files, sections)) =
        match engine.manifest().and_then(|m| Ok((m, engine.counts()?))) {
            Ok(read) => read,
            Err(e) => {
                report
                    .add("index", Status::Fail, format!("cannot read the index: {e}"))
                    .fix("doc-serve index --full");
                return;
            }
        };
    let committed = std::fs::metadata(engine.dir().join("meta.json"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or("at an unknown time".into(), |d| ago(d.as_secs()));
    let detail = format!(
        "{}, {}, last commit {committed}",
        count(files as usize, "file"),
        count(sections as usize, "section")
    );
    let Some(found) = found else {
        report.add("index", Status::Ok, detail);
        return;
    };
    let plan = plan(&manifest, &found.files, &chunk_options(config).key(), false);
    let (mut new, mut changed, mut skipped) = (0, 0, 0);
    for file in plan.read {
        if manifest.contains_key(&file.rel) {
            changed += 1;
        } else if found.sources.read(file).is_err() {
            // Binary or unreadable: indexing skips it again, it is not behind.
            skipped += 1;
        } else {
            new += 1;
        }
    }
    let gone = plan.gone.len();
    let skipped = if skipped > 0 {
        format!(
            " ({} skipped as binary or unreadable)",
            count(skipped, "file")
        )
    } else {
        String::new()
    };
    if new + changed + gone == 0 {
        report.add(
            "index",
            Status::Ok,
            format!("{detail}; up to date{skipped}"),
        );
        return;
    }
    let behind = format!(
        "{detail}; behind the disk: {new} new, {changed} modified (size or mtime), {gone} gone{skipped}"
    );
    if found.unreadable && gone > 0 {
        report.add("index", Status::Warn, behind).fix(
            "first make the paths under sources readable: indexing now drops what it cannot \
             read",
        );
    } else if running {
        report.add("index", Status::Warn, behind).fix(
            "the running resident applies changes within moments: check again; if this \
             stays, `doc-serve index`",
        );
    } else {
        report
            .add("index", Status::Warn, behind)
            .fix("doc-serve index");
    }
}

/// `secs` seconds ago, in the largest whole unit.
fn ago(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}
