//! `doc-serve status` and `doc-serve where`: read-only views of a project.

use serde_json::{Value, json};

use super::{Context, client_runtime, output};
use crate::config::Flags;
use crate::discovery::runtime::{RuntimeFile, RuntimeState};
use crate::discovery::{self, Resident};
use crate::engine::{Engine, Space};
use crate::error::exit;
use crate::supervisor;

/// runtime.json as shown to users: everything but the token.
fn public(state: &RuntimeState) -> Value {
    let mut v = serde_json::to_value(state).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        map.remove("token");
    }
    v
}

/// How a project in shared mode is served, for `status` and `where`.
fn served_by(ctx: &Context, daemon: Option<&Context>) -> Value {
    match daemon {
        Some(d) => json!({
            "daemon": "shared",
            "daemon_state_dir": d.project.state_dir,
            "project_id": ctx.project.id(),
            "base_path": format!("/projects/{}", ctx.project.id()),
        }),
        None => Value::Null,
    }
}

fn say_served_by(out: &mut dyn std::io::Write, served: &Value) -> std::io::Result<()> {
    if served.is_null() {
        return Ok(());
    }
    writeln!(
        out,
        "served by:    the shared daemon ({}), under {}",
        served["daemon_state_dir"].as_str().unwrap_or_default(),
        served["base_path"].as_str().unwrap_or_default()
    )
}

pub fn status(ctx: &Context, json: bool, space: bool) -> anyhow::Result<i32> {
    let config = ctx.config(&Flags::default())?;
    let daemon = ctx.daemon_of()?;
    let served = served_by(ctx, daemon.as_ref());
    let project = &daemon.as_ref().unwrap_or(ctx).project;
    let found = client_runtime()?.block_on(discovery::inspect(project))?;
    let (state, runtime, why) = match &found.resident {
        Resident::Running(s) => ("running", Some(public(s)), None),
        Resident::Stopped => ("stopped", None, None),
        Resident::Foreign { root, pid } => (
            "foreign",
            None,
            Some(discovery::shared_state_dir(project, root, *pid)),
        ),
        Resident::Starting {
            pid,
            runtime,
            stopped,
        } => (
            if *stopped { "unresponsive" } else { "starting" },
            None,
            Some(format!(
                "pid {}{} holds the lifetime lock; runtime.json is {runtime}",
                pid.map_or("unknown".into(), |p| p.to_string()),
                if *stopped {
                    " (stopped: `doc-serve stop` stops it)"
                } else {
                    ""
                }
            )),
        ),
        Resident::Unresponsive { state, why } => {
            ("unresponsive", Some(public(state)), Some(why.clone()))
        }
    };
    let instance = supervisor::serving(&ctx.env, project);
    // What cannot be measured (no index yet, a damaged one) is said beside the status,
    // which stays as it is.
    let space = if space {
        if ctx.project.is_shared_daemon() {
            anyhow::bail!(
                "the shared daemon keeps one index per project: run `doc-serve status --space` \
                 in the project"
            );
        }
        let data_dir = ctx.project.state_path(&config.data_dir);
        Some(match Engine::open_existing(&data_dir) {
            Ok(Some(engine)) => engine.space().map_err(|e| {
                format!(
                    "cannot measure the index in {}: {e}",
                    engine.dir().display()
                )
            }),
            Ok(None) => Err(format!(
                "no index of this doc-serve version in {} yet: `doc-serve index` builds it",
                data_dir.display()
            )),
            Err(e) => Err(format!(
                "cannot open the index in {}: {e}",
                data_dir.display()
            )),
        })
    } else {
        None
    };
    let (space, space_error) = match space {
        Some(Ok(space)) => (Some(space), None),
        Some(Err(why)) => (None, Some(why)),
        None => (None, None),
    };
    let report = json!({
        "state": state,
        "project_root": ctx.project.root,
        "state_dir": project.state_dir,
        "served_by": served,
        "runtime": runtime,
        "why": why,
        "stale": found.stale,
        "instance": instance,
        "space": space,
        "space_error": space_error,
    });
    output::emit(json, &report, |out| {
        match &found.resident {
            Resident::Running(s) => {
                writeln!(
                    out,
                    "running: {} (pid {}, {} activation, since {})",
                    s.base_url, s.pid, s.activation, s.started_at
                )?;
            }
            Resident::Stopped => writeln!(out, "not running")?,
            _ => writeln!(out, "{state}: {}", why.as_deref().unwrap_or_default())?,
        }
        if ctx.project.is_shared_daemon() {
            writeln!(out, "shared daemon: {}", project.state_dir.display())?;
        } else {
            writeln!(out, "project: {}", ctx.project.root.display())?;
        }
        say_served_by(out, &served)?;
        if let Some(i) = &instance {
            writeln!(
                out,
                "{} instance {:?} listens on {}: the first request starts it",
                i.supervisor.name(),
                i.slug,
                i.socket_path.display()
            )?;
        }
        for f in &found.stale {
            writeln!(out, "stale: {}: {}", f.path.display(), f.reason)?;
        }
        if !found.stale.is_empty() {
            writeln!(
                out,
                "(`doc-serve start` or `doc-serve stop` removes stale files)"
            )?;
        }
        if let Some(space) = &space {
            say_space(out, space)?;
        }
        if let Some(why) = &space_error {
            writeln!(out, "index: {why}")?;
        }
        Ok(())
    })?;
    Ok(if matches!(found.resident, Resident::Running(_)) {
        exit::OK
    } else {
        exit::NOTHING
    })
}

/// The index's size, per field and part, as a table.
fn say_space(out: &mut dyn std::io::Write, space: &Space) -> std::io::Result<()> {
    let mb = |b: u64| match b {
        0..1_000 => format!("{b} B"),
        1_000..1_000_000 => format!("{:.1} kB", b as f64 / 1e3),
        _ => format!("{:.1} MB", b as f64 / 1e6),
    };
    writeln!(
        out,
        "index: {}: {} on disk, {} segments, {} documents",
        space.dir.display(),
        mb(space.on_disk),
        space.segments,
        space.docs
    )?;
    writeln!(
        out,
        "  {:<15} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>13}",
        "field", "indexed", "terms", "postings", "positions", "norms", "fast", "stored (raw)"
    )?;
    for f in space
        .fields
        .iter()
        .filter(|f| f.indexed() + f.stored_raw > 0)
    {
        writeln!(
            out,
            "  {:<15} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>13}",
            f.field,
            mb(f.indexed()),
            mb(f.terms),
            mb(f.postings),
            mb(f.positions),
            mb(f.norms),
            mb(f.fast),
            mb(f.stored_raw)
        )?;
    }
    let raw: u64 = space.fields.iter().map(|f| f.stored_raw).sum();
    writeln!(
        out,
        "  doc store: {} ({} of stored values, {} of offsets); deletes {}; other {}",
        mb(space.store),
        mb(raw),
        mb(space.store_offsets),
        mb(space.deletes),
        mb(space.other)
    )?;
    for other in &space.others {
        writeln!(
            out,
            "also: {}: {} (another doc-serve version's index; a resident removes it once \
             unused for a week)",
            other.dir.display(),
            mb(other.on_disk)
        )?;
    }
    Ok(())
}

pub fn where_(ctx: &Context, json: bool) -> anyhow::Result<i32> {
    let project = &ctx.project;
    let mut config = ctx.config(&Flags::default())?;
    let daemon = ctx.daemon_of()?;
    let served = served_by(ctx, daemon.as_ref());
    // A project in shared mode is reached where the daemon is.
    let target = match &daemon {
        Some(d) => {
            config = d.config(&Flags::default())?;
            &d.project
        }
        None => project,
    };
    let mut addresses = Vec::new();
    let runtime = RuntimeFile::read(&target.runtime_file());
    if let RuntimeFile::Valid(s) = &runtime {
        addresses.push(json!({ "address": s.base_url, "source": "runtime.json" }));
        if let Some(sock) = &s.socket_path {
            addresses.push(json!({ "address": format!("unix:{}", sock.display()), "source": "runtime.json socket_path" }));
        }
    }
    let instance = supervisor::serving(&ctx.env, target);
    if let Some(i) = &instance {
        let source = format!("{} instance {}", i.supervisor.name(), i.slug);
        addresses.push(
            json!({ "address": format!("unix:{}", i.socket_path.display()), "source": source }),
        );
        if let Some(port) = i.tcp_port {
            addresses
                .push(json!({ "address": format!("http://127.0.0.1:{port}"), "source": source }));
        }
    }
    if config.port != 0 {
        let host = if config.bind_host.contains(':') {
            format!("[{}]", config.bind_host)
        } else {
            config.bind_host.clone()
        };
        addresses.push(json!({ "address": format!("http://{host}:{}", config.port), "source": "configured bind_host:port" }));
    }
    // Commands that would index it refuse this root: say so, and why.
    let too_broad = project.too_broad(ctx.env.home.as_deref());
    let report = json!({
        "project_root": project.root,
        "reason": project.reason,
        "reason_text": project.reason.to_string(),
        "state_dir": project.state_dir,
        "project_id": project.id(),
        "mode": config.mode,
        "served_by": served,
        "config_file": project.config_file(),
        "config_exists": project.config_file().exists(),
        "runtime_file": target.runtime_file(),
        "runtime": runtime.describe(),
        "addresses": addresses,
        "instance": instance,
        "refused": too_broad,
    });
    output::emit(json, &report, |out| {
        writeln!(
            out,
            "project root: {} ({})",
            project.root.display(),
            project.reason
        )?;
        if let Some(why) = &too_broad {
            writeln!(out, "refused:      {why}")?;
        }
        writeln!(out, "state dir:    {}", project.state_dir.display())?;
        writeln!(out, "project id:   {}", project.id())?;
        writeln!(
            out,
            "config:       {}{}",
            project.config_file().display(),
            if project.config_file().exists() {
                ""
            } else {
                " (absent: defaults)"
            }
        )?;
        writeln!(
            out,
            "runtime file: {} ({})",
            target.runtime_file().display(),
            runtime.describe()
        )?;
        say_served_by(out, &served)?;
        if addresses.is_empty() {
            writeln!(
                out,
                "addresses:    none yet (`doc-serve start` starts a resident)"
            )?;
        }
        for a in &addresses {
            writeln!(
                out,
                "address:      {} ({})",
                a["address"].as_str().unwrap_or_default(),
                a["source"].as_str().unwrap_or_default()
            )?;
        }
        Ok(())
    })?;
    Ok(exit::OK)
}
