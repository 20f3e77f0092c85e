//! `doc-serve doctor`: checks a project's set-up and says how to fix what is wrong.
//!
//! Read-only: it creates, locks and changes nothing (the lifetime lock is only tested,
//! as `status` does). Each check is ok, warn (works, but not as well as it could) or
//! fail (something does not work); a check that depends on a failed one is skipped.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use super::{Context, client_runtime, output};
use crate::config::{Config, CoordinationMode, Flags, Mode};
use crate::discovery::{self, Resident};
use crate::engine::Engine;
use crate::error::exit;
use crate::ingest::sync::needs_reading;
use crate::ingest::walk::{SourceFile, Sources};
use crate::supervisor::{self, registry::Supervisor, systemd};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
    Skipped,
}

#[derive(Debug, Serialize)]
struct Check {
    check: &'static str,
    status: Status,
    detail: String,
    /// What to run or change, when it is not ok.
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
    let config = check_config(ctx, &mut report);
    check_state_dir(ctx, &mut report);
    let running = check_resident(ctx, config.as_ref(), &mut report)?;
    check_supervisor(ctx, &mut report);
    match &config {
        Some(config) => {
            let files = check_sources(ctx, config, &mut report);
            check_index(ctx, config, files.as_deref(), running, &mut report);
        }
        None => {
            for check in ["sources", "index"] {
                report.add(
                    check,
                    Status::Skipped,
                    "not checked: the settings do not load",
                );
            }
        }
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
                Status::Skipped => "skip",
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
    match ctx.config(&Flags::default()) {
        Ok(config) => {
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
                        "coordination_mode is \"none\": two processes writing the index \
                         at once (a resident and `doc-serve index`, two assistants) can \
                         corrupt it",
                    )
                    .fix("remove coordination_mode from config.json (the default locks)");
            }
            Some(config)
        }
        Err(e) => {
            report
                .add("config", Status::Fail, format!("{e:#}"))
                .fix("correct the setting named above (see the README's Configuration)");
            None
        }
    }
}

/// The state dir, if there is one, can be written, and runtime.json is private.
fn check_state_dir(ctx: &Context, report: &mut Report) {
    let dir = &ctx.project.state_dir;
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.add(
                "state dir",
                Status::Ok,
                format!(
                    "{} does not exist yet: start, index or init creates it",
                    dir.display()
                ),
            );
            return;
        }
        Err(e) => {
            report
                .add(
                    "state dir",
                    Status::Fail,
                    format!("cannot read {}: {e}", dir.display()),
                )
                .fix("check the ownership and mode of the directories above it");
            return;
        }
    };
    if !meta.is_dir() {
        report
            .add(
                "state dir",
                Status::Fail,
                format!("{} is not a directory", dir.display()),
            )
            .fix(format!("move {} aside", dir.display()));
        return;
    }
    if nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_err() {
        report
            .add(
                "state dir",
                Status::Fail,
                format!(
                    "{} cannot be written: no resident or index run can start here",
                    dir.display()
                ),
            )
            .fix(format!("check the owner and mode of {}", dir.display()));
        return;
    }
    let runtime = ctx.project.runtime_file();
    let mode = std::fs::metadata(&runtime).map(|m| m.permissions().mode() & 0o777);
    if let Some(mode) = mode.ok().filter(|m| m & 0o077 != 0) {
        report
            .add(
                "state dir",
                Status::Fail,
                format!(
                    "{} is mode {mode:04o}: other users can read its bearer token",
                    runtime.display()
                ),
            )
            .fix(format!("chmod 600 {}", runtime.display()));
        return;
    }
    report.add("state dir", Status::Ok, dir.display().to_string());
}

/// The resident (or, for a project in shared mode, the shared daemon): running and
/// answering, or stopped without stale files. Returns whether one runs.
fn check_resident(
    ctx: &Context,
    config: Option<&Config>,
    report: &mut Report,
) -> anyhow::Result<bool> {
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
    let found = client_runtime()?.block_on(discovery::inspect(project))?;
    let running = matches!(found.resident, Resident::Running(_));
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
            let next = match supervisor::serving(&ctx.env, project) {
                Some(i) => format!("its {} socket starts it", i.supervisor.name()),
                None if config.is_some_and(|c| c.autostart) => {
                    "`doc-serve query`, `index` or an assistant's MCP server starts it".into()
                }
                None => "`doc-serve start` or an assistant's MCP server starts it (`query` \
                         runs on its own)"
                    .into(),
            };
            report.add(
                "resident",
                Status::Ok,
                format!("{what} is not running; {next}"),
            );
        }
        Resident::Starting { pid, runtime } => {
            let pid = pid.map_or("a process".into(), |p| format!("pid {p}"));
            report
                .add(
                    "resident",
                    Status::Warn,
                    format!("{pid} holds the lifetime lock, but runtime.json is {runtime}"),
                )
                .fix("wait for it to start; if this stays, `doc-serve stop`");
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
    Ok(running)
}

/// A supervisor instance installed for the project: its socket listens and its unit
/// runs a binary that exists.
fn check_supervisor(ctx: &Context, report: &mut Report) {
    let Some(instance) = supervisor::installed(&ctx.env, &ctx.project.root) else {
        report.add(
            "supervisor",
            Status::Ok,
            "none installed (optional: `doc-serve install systemd` or `install launchd`)",
        );
        return;
    };
    let name = instance.supervisor.name();
    let slug = &instance.slug;
    if instance.supervisor == Supervisor::Launchd {
        let home = ctx.env.home.as_deref().unwrap_or(Path::new("~"));
        let plist = supervisor::launchd::agent_path(home, slug);
        if plist.exists() {
            report.add(
                "supervisor",
                Status::Ok,
                format!("launchd instance {slug:?}: {}", plist.display()),
            );
        } else {
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
        }
        return;
    }
    let socket = systemd::socket_unit(slug);
    let exe = ctx
        .env
        .config_home
        .as_deref()
        .and_then(|home| service_binary(home).ok().flatten());
    if let Some(exe) = exe.as_ref().filter(|exe| !exe.exists()) {
        report
            .add(
                "supervisor",
                Status::Fail,
                format!(
                    "the {name} units run {}, which does not exist",
                    exe.display()
                ),
            )
            .fix("doc-serve install systemd --refresh");
        return;
    }
    if !systemd::systemctl(&["is-active", "--quiet", &socket]).check() {
        report
            .add(
                "supervisor",
                Status::Warn,
                format!("{socket} is not listening: nothing starts the resident on demand"),
            )
            .fix(format!("systemctl --user enable --now {socket}"));
        return;
    }
    if !systemd::dead_sockets([&instance]).is_empty() {
        report
            .add(
                "supervisor",
                Status::Fail,
                format!("{socket} is active but its socket file is gone"),
            )
            .fix("doc-serve install systemd --refresh");
        return;
    }
    report.add(
        "supervisor",
        Status::Ok,
        format!("{socket} listens on {}", instance.socket_path.display()),
    );
}

/// The binary `doc-serve@.service` runs: the user's unit (which `install` writes) comes
/// before a package's, as in systemd.
fn service_binary(config_home: &Path) -> std::io::Result<Option<std::path::PathBuf>> {
    let unit = std::iter::once(systemd::user_unit_dir(config_home))
        .chain(systemd::packaged_unit_dir())
        .map(|dir| dir.join("doc-serve@.service"))
        .find(|unit| unit.is_file());
    let Some(unit) = unit else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(unit)?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .and_then(systemd::exec_binary))
}

/// The files to index; `None` when the settings make no walk possible.
fn check_sources(ctx: &Context, config: &Config, report: &mut Report) -> Option<Vec<SourceFile>> {
    if !ctx.project.root.is_dir() {
        report
            .add(
                "sources",
                Status::Fail,
                format!("{} is not a directory", ctx.project.root.display()),
            )
            .fix("run doc-serve in an existing project, or pass --path");
        return None;
    }
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
    let mut detail = format!(
        "{} files to index ({:.1} MB) matching {}",
        files.len(),
        bytes as f64 / 1e6,
        config.include.join(", ")
    );
    if !skipped.is_empty() {
        let first = &skipped[0];
        detail.push_str(&format!(
            "; {} skipped, e.g. {}: {}",
            skipped.len(),
            first.path,
            first.reason
        ));
    }
    if files.is_empty() {
        report
            .add("sources", Status::Warn, detail)
            .fix("check include and exclude in config.json, and the ignore files");
    } else {
        report.add("sources", Status::Ok, detail);
    }
    Some(files)
}

/// The index opens, and holds what is on disk.
fn check_index(
    ctx: &Context,
    config: &Config,
    files: Option<&[SourceFile]>,
    running: bool,
    report: &mut Report,
) {
    let data_dir = ctx.project.state_path(&config.data_dir);
    let engine = match Engine::open_existing(&data_dir) {
        Ok(Some(engine)) => engine,
        Ok(None) => {
            let fix = if running {
                "none: the running resident is building it"
            } else {
                "doc-serve index"
            };
            report
                .add(
                    "index",
                    Status::Warn,
                    format!(
                        "no index of this doc-serve version in {} yet",
                        data_dir.display()
                    ),
                )
                .fix(fix);
            return;
        }
        Err(e) => {
            report
                .add("index", Status::Fail, format!("cannot open the index: {e}"))
                .fix(format!(
                    "stop every doc-serve on the project, move {} aside, then `doc-serve \
                     index` (never delete tantivy's lock files by hand)",
                    data_dir.display()
                ));
            return;
        }
    };
    let (manifest, counts) = match engine.manifest().and_then(|m| Ok((m, engine.counts()?))) {
        Ok(found) => found,
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
        "{} files, {} sections, last commit {committed}",
        counts.0, counts.1
    );
    let Some(files) = files else {
        report.add("index", Status::Ok, detail);
        return;
    };
    let chunking = crate::ingest::sync::chunk_options(config).key();
    let behind = files
        .iter()
        .filter(|f| needs_reading(manifest.get(&f.rel), f, &chunking))
        .count();
    let on_disk: std::collections::HashSet<&str> = files.iter().map(|f| f.rel.as_str()).collect();
    let gone = manifest
        .keys()
        .filter(|p| !on_disk.contains(p.as_str()))
        .count();
    if behind + gone == 0 {
        report.add("index", Status::Ok, format!("{detail}; up to date"));
        return;
    }
    let fix = if running {
        "none if it passes: the running resident applies changes as they come (else `doc-serve index`)"
    } else {
        "doc-serve index"
    };
    report
        .add(
            "index",
            Status::Warn,
            format!("{detail}; {behind} files new or changed and {gone} gone since"),
        )
        .fix(fix);
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
