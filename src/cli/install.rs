//! `doc-serve install systemd|launchd` and `uninstall`: hand a project to a supervisor.
//!
//! install registers slug -> project root, writes the units (or the agent plist) and
//! runs the supervisor's commands, or prints them with `--dry-run`; uninstall undoes
//! exactly that. The rendering lives in `supervisor::{systemd, launchd}`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::json;

use super::{Context, InstallArgs, SupervisorArg, UninstallArgs, output};
use crate::config::Environment;
use crate::error::{Error, exit};
use crate::fsutil;
use crate::supervisor::registry::{self, Instance, Registry, Supervisor};
use crate::supervisor::systemd::{self, systemctl};
use crate::supervisor::{Cmd, launchd};

impl From<SupervisorArg> for Supervisor {
    fn from(s: SupervisorArg) -> Supervisor {
        match s {
            SupervisorArg::Systemd => Supervisor::Systemd,
            SupervisorArg::Launchd => Supervisor::Launchd,
        }
    }
}

/// What install or uninstall did (or, with `--dry-run`, would do), in order.
struct Report {
    dry_run: bool,
    steps: Vec<String>,
    written: Vec<PathBuf>,
    removed: Vec<PathBuf>,
    commands: Vec<String>,
    notes: Vec<String>,
    /// With `--dry-run`, the text each written file would get.
    previews: BTreeMap<PathBuf, String>,
}

impl Report {
    fn new(dry_run: bool) -> Report {
        Report {
            dry_run,
            steps: Vec::new(),
            written: Vec::new(),
            removed: Vec::new(),
            commands: Vec::new(),
            notes: Vec::new(),
            previews: BTreeMap::new(),
        }
    }

    fn run(&mut self, cmd: Cmd) -> anyhow::Result<()> {
        self.steps
            .push(format!("{}: {cmd}", self.verb("ran", "would run")));
        self.commands.push(cmd.to_string());
        if !self.dry_run {
            cmd.run()?;
        }
        Ok(())
    }

    /// Runs a command whose failure is expected and harmless (unloading what may not
    /// be loaded).
    fn try_run(&mut self, cmd: Cmd) {
        self.steps
            .push(format!("{}: {cmd}", self.verb("ran", "would run")));
        self.commands.push(cmd.to_string());
        if !self.dry_run {
            cmd.check();
        }
    }

    fn write(&mut self, path: &Path, text: &str) -> anyhow::Result<()> {
        self.steps.push(format!(
            "{} {}",
            self.verb("wrote", "would write"),
            path.display()
        ));
        if self.dry_run {
            self.previews.insert(path.to_owned(), text.to_owned());
        } else {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            fsutil::write_atomic(path, text.as_bytes(), 0o644)?;
        }
        self.written.push(path.to_owned());
        Ok(())
    }

    /// Writes `text` unless the file already holds exactly that.
    fn update(&mut self, path: &Path, text: &str) -> anyhow::Result<()> {
        if std::fs::read_to_string(path).ok().as_deref() == Some(text) {
            return Ok(());
        }
        self.write(path, text)
    }

    fn remove(&mut self, path: &Path) -> anyhow::Result<()> {
        if !path.exists() {
            return Ok(());
        }
        self.steps.push(format!(
            "{} {}",
            self.verb("removed", "would remove"),
            path.display()
        ));
        if !self.dry_run {
            let r = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
            r.with_context(|| format!("cannot remove {}", path.display()))?;
        }
        self.removed.push(path.to_owned());
        Ok(())
    }

    fn verb(&self, done: &'static str, would: &'static str) -> &'static str {
        if self.dry_run { would } else { done }
    }

    fn emit(self, action: &str, instance: Option<&Instance>, json: bool) -> anyhow::Result<i32> {
        let value = json!({
            "action": action,
            "dry_run": self.dry_run,
            "instance": instance,
            "written": self.written,
            "removed": self.removed,
            "commands": self.commands,
            "notes": self.notes,
            "previews": self.previews,
        });
        output::emit(json, &value, |out| {
            if let Some(i) = instance {
                writeln!(
                    out,
                    "{action} {} instance {:?} for {}",
                    i.supervisor.name(),
                    i.slug,
                    i.root.display()
                )?;
            }
            for s in &self.steps {
                writeln!(out, "  {s}")?;
            }
            for n in &self.notes {
                writeln!(out, "{n}")?;
            }
            Ok(())
        })?;
        Ok(exit::OK)
    }
}

/// The user's config dir, where the instance registry and user units live.
pub(super) fn config_home(env: &Environment) -> anyhow::Result<PathBuf> {
    env.config_home
        .clone()
        .context("neither XDG_CONFIG_HOME nor HOME is set: cannot find the user's config dir")
}

/// A free TCP port on 127.0.0.1, chosen by the OS.
fn free_port() -> crate::error::Result<u16> {
    let taken = |e: std::io::Error| Error::io("cannot find a free port on 127.0.0.1", e);
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(taken)?;
    Ok(l.local_addr().map_err(taken)?.port())
}

/// Registers (or finds) this project's instance under `supervisor`; with `--dry-run`
/// nothing is saved. `socket_for` gives the socket path of a slug.
fn register(
    ctx: &Context,
    args: &InstallArgs,
    registry_file: &Path,
    supervisor: Supervisor,
    socket_for: &dyn Fn(&str) -> crate::error::Result<PathBuf>,
) -> anyhow::Result<Instance> {
    let root = ctx.project.root.clone();
    if let Some(name) = &args.name {
        registry::check_slug(name)?;
    }
    let choose = |reg: &mut Registry| -> crate::error::Result<Instance> {
        let existing = reg.by_root(&root, supervisor).cloned();
        let slug = match (&args.name, &existing) {
            (Some(name), _) => name.clone(),
            (None, Some(e)) => e.slug.clone(),
            (None, None) => reg.free_slug(&root),
        };
        if let Some(other) = reg.instances.get(&slug).filter(|i| i.root != root) {
            return Err(Error::Setting {
                name: "--name".into(),
                message: format!(
                    "instance {slug:?} already serves {}; choose another --name",
                    other.root.display()
                ),
            });
        }
        if let Some(e) = existing.as_ref().filter(|e| e.slug != slug) {
            // Renamed: the old slug goes, so one root has one instance.
            reg.instances.remove(&e.slug);
        }
        let recorded = existing.as_ref().and_then(|e| e.tcp_port);
        let tcp_port = match args.tcp_port {
            Some(0) => Some(match recorded {
                Some(port) => port,
                None => free_port()?,
            }),
            Some(port) => Some(port),
            None => recorded,
        };
        let instance = Instance {
            socket_path: socket_for(&slug)?,
            slug: slug.clone(),
            root: root.clone(),
            supervisor,
            tcp_port,
        };
        reg.instances.insert(slug, instance.clone());
        Ok(instance)
    };
    if args.dry_run {
        Ok(choose(&mut Registry::load(registry_file)?)?)
    } else {
        Ok(Registry::update(registry_file, choose)?)
    }
}

/// The instance to uninstall: `--name`, else the project's.
fn find(
    ctx: &Context,
    args: &UninstallArgs,
    file: &Path,
    sup: Supervisor,
) -> anyhow::Result<Instance> {
    let reg = Registry::load(file)?;
    let found = match &args.name {
        Some(name) => reg.instances.get(name).filter(|i| i.supervisor == sup),
        None => reg.by_root(&ctx.project.root, sup),
    };
    found.cloned().with_context(|| match &args.name {
        Some(name) => format!("no {} instance {name:?} in {}", sup.name(), file.display()),
        None => format!(
            "no {} instance is installed for {} (see {})",
            sup.name(),
            ctx.project.root.display(),
            file.display()
        ),
    })
}

fn unregister(file: &Path, slug: &str, dry_run: bool) -> anyhow::Result<()> {
    if !dry_run {
        Registry::update(file, |r| {
            r.instances.remove(slug);
            Ok(())
        })?;
    }
    Ok(())
}

pub fn install(
    ctx: &Context,
    supervisor: SupervisorArg,
    args: &InstallArgs,
) -> anyhow::Result<i32> {
    match supervisor {
        SupervisorArg::Systemd => install_systemd(ctx, args),
        SupervisorArg::Launchd => install_launchd(ctx, args),
    }
}

pub fn uninstall(
    ctx: &Context,
    supervisor: SupervisorArg,
    args: &UninstallArgs,
) -> anyhow::Result<i32> {
    match supervisor {
        SupervisorArg::Systemd => uninstall_systemd(ctx, args),
        SupervisorArg::Launchd => uninstall_launchd(ctx, args),
    }
}

fn install_systemd(ctx: &Context, args: &InstallArgs) -> anyhow::Result<i32> {
    let config_home = config_home(&ctx.env)?;
    let runtime_dir = ctx.env.runtime_dir.clone().context(
        "XDG_RUNTIME_DIR is not set: systemd user units need a user session \
         (log in, or `loginctl enable-linger $USER`)",
    )?;
    let registry_file = Registry::file(&config_home);
    let mut report = Report::new(args.dry_run);
    let instance = if args.refresh {
        None
    } else {
        let socket_for = |slug: &str| systemd::socket_path(&runtime_dir, slug);
        Some(register(
            ctx,
            args,
            &registry_file,
            Supervisor::Systemd,
            &socket_for,
        )?)
    };

    // The units: the package's, or ours in the user's unit dir naming this binary.
    let unit_dir = systemd::user_unit_dir(&config_home);
    let service = unit_dir.join("doc-serve@.service");
    if systemd::packaged_unit_dir().is_none() || systemd::written_by_us(&service) {
        let exe = std::env::current_exe().context("cannot find the doc-serve binary's path")?;
        report.update(&service, &systemd::render_service(&exe))?;
        report.update(
            &unit_dir.join("doc-serve@.socket"),
            &systemd::render_socket(),
        )?;
    }
    if let Some(i) = &instance {
        let dropin = systemd::dropin_dir(&config_home, &i.slug).join("tcp.conf");
        match i.tcp_port {
            Some(port) => report.update(&dropin, &systemd::render_tcp_dropin(port))?,
            None => report.remove(&dropin)?,
        }
    }
    report.run(systemctl(&["daemon-reload"]))?;
    if let Some(i) = &instance {
        let unit = systemd::socket_unit(&i.slug);
        if args.enable {
            report.run(systemctl(&["enable", &unit]))?;
            // A restart, not a start: an active socket picks up a changed listener.
            report.run(systemctl(&["restart", &unit]))?;
        } else {
            report.notes.push(format!(
                "to start it now and at every login: systemctl --user enable --now {unit}"
            ));
        }
    }
    // Sockets a reload left without a descriptor (a changed ListenStream=) are
    // restarted, so installed instances keep answering across upgrades.
    if !args.dry_run {
        let reg = Registry::load(&registry_file)?;
        let ours = reg
            .instances
            .values()
            .filter(|i| i.supervisor == Supervisor::Systemd);
        for dead in systemd::dead_sockets(ours) {
            report.run(systemctl(&["restart", &systemd::socket_unit(&dead.slug)]))?;
        }
    }
    let action = if args.refresh { "refresh" } else { "install" };
    report.emit(action, instance.as_ref(), args.json)
}

fn uninstall_systemd(ctx: &Context, args: &UninstallArgs) -> anyhow::Result<i32> {
    let config_home = config_home(&ctx.env)?;
    let registry_file = Registry::file(&config_home);
    let instance = find(ctx, args, &registry_file, Supervisor::Systemd)?;
    let mut report = Report::new(args.dry_run);
    let slug = &instance.slug;
    report.run(systemctl(&[
        "disable",
        "--now",
        &systemd::socket_unit(slug),
    ]))?;
    report.run(systemctl(&["stop", &systemd::service_unit(slug)]))?;
    report.remove(&systemd::dropin_dir(&config_home, slug))?;
    let others = Registry::load(&registry_file)?
        .instances
        .values()
        .any(|i| i.supervisor == Supervisor::Systemd && &i.slug != slug);
    if !others {
        let unit_dir = systemd::user_unit_dir(&config_home);
        for name in ["doc-serve@.service", "doc-serve@.socket"] {
            let path = unit_dir.join(name);
            if systemd::written_by_us(&path) {
                report.remove(&path)?;
            }
        }
    }
    unregister(&registry_file, slug, args.dry_run)?;
    report.run(systemctl(&["daemon-reload"]))?;
    report.emit("uninstall", Some(&instance), args.json)
}

/// `launchctl ARGS`, from the argument lists `supervisor::launchd` builds.
fn launchctl(argv: &[String]) -> Cmd {
    let args: Vec<&str> = argv.iter().skip(1).map(String::as_str).collect();
    Cmd::new("launchctl", &args)
}

fn install_launchd(ctx: &Context, args: &InstallArgs) -> anyhow::Result<i32> {
    if args.refresh {
        bail!("--refresh is for systemd; launchd reads an agent when it is bootstrapped");
    }
    if !cfg!(target_os = "macos") && !args.dry_run {
        bail!(
            "launchd is macOS's service manager: here use `doc-serve install systemd` \
             (`install launchd --dry-run` shows the agent it would write)"
        );
    }
    let home = ctx.env.home.clone().context("HOME is not set")?;
    let registry_file = Registry::file(&config_home(&ctx.env)?);
    let socket_for = |slug: &str| launchd::socket_path(&home, slug);
    let instance = register(ctx, args, &registry_file, Supervisor::Launchd, &socket_for)?;
    let exe = std::env::current_exe().context("cannot find the doc-serve binary's path")?;
    let log = launchd::log_path(&home, &instance.slug);
    for p in [&exe, &instance.socket_path, &log] {
        launchd::check_path(p)?;
    }
    let mut report = Report::new(args.dry_run);
    if !args.dry_run {
        // launchd binds the socket; its directory must exist and be private.
        if let Some(dir) = instance.socket_path.parent() {
            fsutil::create_private_dir(dir)?;
        }
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    let plist = launchd::agent_path(&home, &instance.slug);
    let text = launchd::render_agent(
        &exe,
        &instance.slug,
        &instance.socket_path,
        instance.tcp_port,
        &log,
    );
    report.update(&plist, &text)?;
    let uid = nix::unistd::getuid().as_raw();
    let bootstrap = launchctl(&launchd::bootstrap_command(uid, &plist));
    if args.enable {
        // launchd reads an agent only at bootstrap, and refuses a second bootstrap of
        // a loaded label: unload first (harmless when it is not loaded).
        report.try_run(launchctl(&launchd::bootout_command(
            uid,
            &launchd::label(&instance.slug),
        )));
        report.run(bootstrap)?;
    } else {
        report
            .notes
            .push(format!("to load it now and at every login: {bootstrap}"));
    }
    report.emit("install", Some(&instance), args.json)
}

fn uninstall_launchd(ctx: &Context, args: &UninstallArgs) -> anyhow::Result<i32> {
    let home = ctx.env.home.clone().context("HOME is not set")?;
    let registry_file = Registry::file(&config_home(&ctx.env)?);
    let instance = find(ctx, args, &registry_file, Supervisor::Launchd)?;
    let mut report = Report::new(args.dry_run);
    if cfg!(target_os = "macos") {
        let uid = nix::unistd::getuid().as_raw();
        report.try_run(launchctl(&launchd::bootout_command(
            uid,
            &launchd::label(&instance.slug),
        )));
    }
    let plist = launchd::agent_path(&home, &instance.slug);
    if launchd::written_by_us(&plist) {
        report.remove(&plist)?;
    }
    unregister(&registry_file, &instance.slug, args.dry_run)?;
    report.emit("uninstall", Some(&instance), args.json)
}
