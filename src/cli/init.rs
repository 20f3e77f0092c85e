//! `doc-serve init`: the state dir, its .gitignore, and config.json; in shared mode,
//! the project's registration with the shared daemon.

use std::time::Duration;

use anyhow::Context as _;
use hyper::Method;
use serde_json::{Value, json};

use super::reach::Remote;
use super::{Context, client_runtime, output};
use crate::config::{Flags, Mode};
use crate::daemon::Home;
use crate::discovery::{self, Resident};
use crate::fsutil;

pub fn run(ctx: &Context, mode: Mode, json: bool) -> anyhow::Result<i32> {
    let project = &ctx.project;
    project.create_state_dir()?;
    let config_file = project.config_file();
    let created = !config_file.exists();
    if created {
        let mut text = serde_json::to_string_pretty(&json!({ "mode": mode }))?;
        text.push('\n');
        fsutil::write_atomic(&config_file, text.as_bytes(), 0o600)?;
    }
    // An existing config.json is left as it is, but it must be valid.
    let config = ctx.config(&Flags::default())?;
    if !created && config.mode != mode {
        tracing::warn!(
            "{} already sets mode \"{}\"; left unchanged",
            config_file.display(),
            config.mode
        );
    }
    let shared = match config.mode {
        Mode::Shared => Some(register(ctx)?),
        Mode::Project => None,
    };
    let report = json!({
        "project_root": project.root,
        "state_dir": project.state_dir,
        "config_file": config_file,
        "created": created,
        "mode": config.mode,
        "shared": shared,
    });
    output::emit(json, &report, |out| {
        if created {
            writeln!(
                out,
                "initialised {} ({} mode)",
                project.state_dir.display(),
                config.mode
            )?;
        } else {
            writeln!(out, "already initialised: {}", config_file.display())?;
        }
        if let Some(s) = &shared {
            let how = if s["daemon"].is_null() {
                "the shared daemon opens it at its first request (`doc-serve start` starts the daemon)"
            } else {
                "the shared daemon is indexing it"
            };
            writeln!(
                out,
                "registered as {} in {}: {how}",
                s["project_id"].as_str().unwrap_or_default(),
                s["home"].as_str().unwrap_or_default()
            )?;
        }
        Ok(())
    })?;
    Ok(crate::error::exit::OK)
}

/// Registers a shared-mode project in ~/.doc-serve, and with the daemon when one runs
/// (which opens it and starts indexing). A daemon that is not running is not started.
fn register(ctx: &Context) -> anyhow::Result<Value> {
    let home = Home::of(&ctx.env)?;
    let (reg, _) = home.register(&ctx.project.root)?;
    let Some(daemon) = ctx.daemon_of()? else {
        anyhow::bail!("the project is not in shared mode");
    };
    let rt = client_runtime()?;
    let running = match rt.block_on(discovery::inspect(&daemon.project))?.resident {
        Resident::Running(state) => {
            let remote = Remote::of(&state)?.for_project(&ctx.project);
            rt.block_on(remote.call(Method::GET, "/status", None, Duration::from_secs(60)))
                .with_context(|| format!("the shared daemon at {}", state.base_url))?;
            Some(state.base_url)
        }
        _ => None,
    };
    Ok(json!({
        "project_id": reg.id,
        "home": home.dir(),
        "daemon": running,
    }))
}
