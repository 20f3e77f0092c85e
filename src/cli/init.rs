//! `doc-serve init`: the state dir, its .gitignore, and config.json.

use serde_json::json;

use super::{Context, output};
use crate::config::{Flags, Mode};
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
    let report = json!({
        "project_root": project.root,
        "state_dir": project.state_dir,
        "config_file": config_file,
        "created": created,
        "mode": config.mode,
    });
    output::emit(json, &report, |out| {
        if created {
            writeln!(
                out,
                "initialised {} ({} mode)",
                project.state_dir.display(),
                config.mode
            )
        } else {
            writeln!(out, "already initialised: {}", config_file.display())
        }
    })?;
    Ok(crate::error::exit::OK)
}
