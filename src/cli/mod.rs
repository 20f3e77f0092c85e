//! The command line: argument definitions and dispatch, one file per command family.
//!
//! Commands return an exit code (see [`crate::error::exit`]) or an error, which `main`
//! prints with its whole chain. Only [`output`] writes to stdout.

mod bridge;
mod docs;
mod doctor;
mod hits;
mod init;
mod inspect;
mod install;
mod lifecycle;
mod markup;
mod model;
mod open;
mod output;
mod reach;
mod remote;
mod search;
mod serve;

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, Environment, Flags, Mode};
use crate::project::{Project, RootReason};
use crate::terminal::When;

const ABOUT: &str =
    "Fast local search over a project's documentation, for people and AI assistants";

const LONG_ABOUT: &str = "\
doc-serve indexes a project's Markdown, reStructuredText, AsciiDoc and text files and \
answers ranked, sectioned results over a JSON HTTP API, the command line and MCP.

A project's resident server is found through .claude/doc-serve/runtime.json. It runs \
under systemd or launchd (socket activation), or on its own (`doc-serve start`).";

#[derive(Debug, Parser)]
#[command(name = "doc-serve", version, about = ABOUT, long_about = LONG_ABOUT, after_help = docs::after_help())]
pub struct Cli {
    /// Project root; default: found from the current directory (see `doc-serve where`)
    #[arg(long, global = true, value_name = "DIR")]
    pub path: Option<PathBuf>,

    /// Colour hits and log lines: `auto` on a terminal unless NO_COLOR is set or TERM
    /// is dumb; `always` and `never` win over NO_COLOR
    #[arg(long, global = true, value_enum, value_name = "WHEN", default_value_t = When::Auto)]
    pub color: When,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the state dir (.claude/doc-serve/, 0700) and its config.json
    Init {
        /// `project`: one resident per project; `shared`: use the per-user shared daemon
        #[arg(long, value_enum, default_value_t = ModeArg::Project)]
        mode: ModeArg,
        /// Print what was set up as JSON: the project root, state dir and config file,
        /// whether it was created, the mode
        #[arg(long)]
        json: bool,
    },
    /// Run the resident server in the foreground (what a supervisor runs)
    ///
    /// Takes the project's lifetime lock, serves the sockets inherited from systemd
    /// (LISTEN_FDS) or binds bind_host:port, writes runtime.json once ready, reports
    /// readiness with sd_notify, and exits on SIGTERM, SIGINT or the idle timeout.
    Serve(ServeArgs),
    /// Start a detached resident for the project, or report the one running
    Start {
        /// Exit after this many seconds without requests (0: never)
        #[arg(long, value_name = "SECS")]
        idle_timeout: Option<u64>,
        /// The per-user shared daemon (state in ~/.doc-serve), not this project's resident
        #[arg(long)]
        shared: bool,
        /// Print the resident as JSON: base_url, pid, project_root, whether it was
        /// already running (existing), how it was started (activation)
        #[arg(long)]
        json: bool,
    },
    /// Stop the project's resident (only if it is provably ours) and clean stale files
    Stop {
        /// Kill it (SIGKILL) if it has not exited after SIGTERM and the drain timeout
        #[arg(long)]
        force: bool,
        /// The per-user shared daemon, not this project's resident
        #[arg(long)]
        shared: bool,
        /// Print the outcome as JSON: stopped, pid, and the stale files cleaned
        #[arg(long)]
        json: bool,
    },
    /// Show whether a resident runs, where, and explain any stale files
    ///
    /// Exits 0 when a healthy resident answers, 1 otherwise. For a project in shared
    /// mode, the shared daemon's state.
    Status {
        /// The per-user shared daemon, not this project's resident
        #[arg(long)]
        shared: bool,
        /// Print the state as JSON: state, project_root, state_dir, runtime, and why
        /// each leftover file is stale
        #[arg(long)]
        json: bool,
        /// Also show where the index's bytes go: per field, its terms, postings,
        /// positions, norms and fast columns, and its stored values (read from the
        /// index on disk; a resident need not run)
        #[arg(long)]
        space: bool,
    },
    /// Bring the index in line with the files on disk (only changed files are read)
    Index {
        /// Re-read and re-index every file, changed or not
        #[arg(long)]
        full: bool,
        /// Print the summary as JSON: files added, updated, removed, unchanged and
        /// skipped (with the reason), and the index's files and sections
        #[arg(long)]
        json: bool,
    },
    /// Search the docs: ranked sections with path, line range and snippet
    ///
    /// Words are ranked (sections with all of them first), "quoted phrases" must
    /// appear, -word excludes, path:PREFIX keeps hits under a path. Exits 1 when nothing
    /// matches.
    Query {
        /// The query, e.g. 'tokio runtime "block on" -async path:docs/'
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        /// Most hits to show (at least 1; at most 1000 are given)
        #[arg(long, short = 'n', default_value_t = 10, value_parser = at_least_one)]
        limit: usize,
        /// Hits to skip: the next page starts at the `next_offset` of this one
        #[arg(long, default_value_t = 0, value_name = "N")]
        offset: usize,
        /// Only hits whose path starts with this
        #[arg(long, value_name = "PREFIX")]
        path_prefix: Option<String>,
        /// Most seconds to wait for a resident's first index (default 20, at most 120;
        /// 0: answer from what is indexed so far)
        #[arg(long, value_name = "SECS")]
        wait: Option<u64>,
        /// Fit the answer in about N tokens (4 bytes each): the best hits that fit,
        /// the first one's snippet cut if even it does not; the answer says so
        #[arg(long, value_name = "N", value_parser = at_least_one)]
        max_tokens: Option<usize>,
        /// Rank by words (lexical), by meaning (semantic: needs embedding_model), or
        /// both fused (hybrid). Default: hybrid once every section is embedded,
        /// lexical until then
        #[arg(long, value_enum)]
        mode: Option<SearchMode>,
        /// Show each hit's rank by words and by meaning
        #[arg(long)]
        explain: bool,
        /// Link each hit's path:line to its file (OSC 8): `auto` when colour is on and
        /// the terminal is one known to show links; never without colour
        #[arg(long, value_enum, value_name = "WHEN", default_value_t = When::Auto)]
        hyperlink: When,
        /// Print the answer as JSON, as /query gives it, on stdout even when nothing
        /// matched (exit 1 then too)
        #[arg(long)]
        json: bool,
    },
    /// Read a section by its id (from a hit), a file, a range of its lines, or the
    /// section under a heading
    ///
    /// TARGET is a section id as hits show it (docs/guide/install.md#linux) or a path
    /// relative to the project root. Prints the text with its path, line range and
    /// heading trail, then the ids of the sections before and after. Asks the resident
    /// when one can be reached, else reads the file itself; only files the index would
    /// hold can be read. Exits 2 when there is no such document or section.
    Read {
        /// A section id (path#anchor) or a path
        target: String,
        /// Only these lines, 1-based and inclusive: 10-20, 10- or -20
        #[arg(
            long,
            value_name = "A-B",
            conflicts_with = "heading",
            allow_hyphen_values = true
        )]
        lines: Option<String>,
        /// The section under this heading (its subsections included): 'Linux' or
        /// 'Install > Linux'
        #[arg(long, value_name = "TEXT")]
        heading: Option<String>,
        /// Cut the text after about N tokens (4 bytes each), on a line boundary
        #[arg(long, value_name = "N", value_parser = at_least_one)]
        max_tokens: Option<usize>,
        /// Print the answer as JSON, as /documents gives it
        #[arg(long)]
        json: bool,
    },
    /// Serve the MCP tools on stdio for an AI assistant, bridged to the resident
    ///
    /// Tools: search_docs, read_doc, index_status, reindex. The project's resident is
    /// found (runtime.json, then an installed supervisor instance) or started, so every
    /// assistant on a project shares one index; if it goes away it is found or started
    /// again at the next tool call. With no resident to be had, answers from the index
    /// on disk. Example: claude mcp add doc-serve -- doc-serve mcp
    Mcp,
    /// Open the search page in a browser, signed in
    ///
    /// Asks the project's resident (started if none runs) for a one-time login code,
    /// good once for 60 s (`login_code_seconds`), and opens the page with it; the
    /// browser then holds a read-only session for 12 h (`session_seconds`). The code
    /// never appears on a command line. Without a display, over SSH, or with --print,
    /// the URL is printed instead (over SSH: ssh -L PORT:127.0.0.1:PORT, then open it
    /// locally). A resident on a Unix socket only gets no page: `install systemd
    /// --tcp-port PORT` adds a TCP listener. Example: doc-serve open
    Open {
        /// Print the URL rather than opening a browser
        #[arg(long)]
        print: bool,
        /// Print it as JSON: url, expires_in (seconds), opened
        #[arg(long)]
        json: bool,
    },
    /// Show the project root, why it was chosen, and where clients look for a server
    Where {
        /// Print it as JSON: project_root with its reason, state_dir, project_id,
        /// config_file, runtime_file and the addresses a client would try
        #[arg(long)]
        json: bool,
    },
    /// Hand this project to a supervisor: register an instance, install the units
    ///
    /// systemd: registers SLUG -> project root in ~/.config/doc-serve/instances.json,
    /// writes the doc-serve@.socket/.service user units (unless a package installed
    /// them), optionally a TCP listener on 127.0.0.1, and runs `systemctl --user
    /// daemon-reload` (and `enable --now doc-serve@SLUG.socket` with --enable). The
    /// socket then listens while nothing runs; the first request starts the resident.
    Install {
        #[arg(value_enum)]
        supervisor: SupervisorArg,
        #[command(flatten)]
        args: InstallArgs,
    },
    /// Undo `install`: stop and disable the instance, remove its files and registration
    Uninstall {
        #[arg(value_enum)]
        supervisor: SupervisorArg,
        #[command(flatten)]
        args: UninstallArgs,
    },
    /// Check the project's set-up and say how to fix what is wrong
    ///
    /// Checks the state dir, the settings, a supervisor instance (socket listening,
    /// unit binary present), the resident (or the shared daemon), its stale files and
    /// token, the files to index, and the index (opens, behind the disk or not). Each
    /// check is ok, warn, FAIL or skip (it depends on a failed one); each problem comes
    /// with a fix. Reads only. Exits 0 when no check fails (warnings allowed), 1 when
    /// one does.
    Doctor {
        /// Print the checks as JSON: {ok, project_root, checks: [{check, status, detail, fix}]}
        #[arg(long)]
        json: bool,
    },
    /// Embedding models: download a known one, list them, embed text (needs no project)
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Print a shell completion script to stdout (needs no project)
    ///
    /// Packages install the bash, zsh and fish scripts. By hand, for bash:
    /// doc-serve completions bash > ~/.local/share/bash-completion/completions/doc-serve
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the doc-serve(1) man page (roff) to stdout (needs no project)
    ///
    /// Packages install it. By hand: doc-serve man > ~/.local/share/man/man1/doc-serve.1
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SupervisorArg {
    Systemd,
    Launchd,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Instance name (a slug: a-z, 0-9, -); default: from the directory name, kept unique
    #[arg(long, value_name = "SLUG")]
    pub name: Option<String>,
    /// Also listen on 127.0.0.1:PORT; without a value a free port is chosen and recorded
    #[arg(long, value_name = "PORT", num_args = 0..=1, default_missing_value = "0")]
    pub tcp_port: Option<u16>,
    /// Start the socket now and at every login (`systemctl --user enable --now`)
    #[arg(long)]
    pub enable: bool,
    /// Print what would be written and run, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Register nothing: rewrite the units for this binary and restart every instance
    /// socket that stopped accepting (run after an upgrade)
    #[arg(long, conflicts_with_all = ["name", "tcp_port", "enable"])]
    pub refresh: bool,
    /// Print what was (or would be) written and run as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct UninstallArgs {
    /// The instance to remove; default: this project's
    #[arg(long, value_name = "SLUG")]
    pub name: Option<String>,
    /// Print what would be removed and run, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print what was (or would be) removed and run as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Serve the project registered for this supervisor instance (what the units run)
    #[arg(long, value_name = "SLUG", conflicts_with = "shared")]
    pub instance: Option<String>,
    /// Run the per-user shared daemon (what doc-serve.service runs): state in
    /// ~/.doc-serve, settings in shared_config.json, port 45123 unless a socket is
    /// inherited; projects register with POST /projects or `doc-serve init --mode shared`
    #[arg(long)]
    pub shared: bool,
    /// Exit after this many seconds without requests (0: never)
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    /// Address to bind when no socket is inherited (default 127.0.0.1)
    #[arg(long, value_name = "ADDR")]
    pub bind_host: Option<String>,
    /// Port to bind when no socket is inherited (default 0: chosen by the OS)
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Project,
    Shared,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Project => Mode::Project,
            ModeArg::Shared => Mode::Shared,
        }
    }
}

/// What every command starts from.
pub struct Context {
    pub env: Environment,
    pub project: Project,
}

impl Context {
    pub fn new(env: Environment, cli_path: Option<&std::path::Path>) -> anyhow::Result<Context> {
        let cwd = std::env::current_dir().context("cannot read the current directory")?;
        let env_path = env.get("DOC_SERVE_PROJECT").map(PathBuf::from);
        let explicit = match (cli_path, &env_path) {
            (Some(p), _) => Some((p, RootReason::Flag)),
            (None, Some(p)) => Some((p.as_path(), RootReason::Env)),
            (None, None) => None,
        };
        let project = Project::resolve(explicit, &cwd, env.home.as_deref())?;
        Ok(Context { env, project })
    }

    /// The context of `serve --instance SLUG`: the project registered for the slug.
    pub fn for_instance(env: Environment, slug: &str) -> anyhow::Result<Context> {
        use crate::supervisor::registry::{Registry, check_slug};
        check_slug(slug)?;
        let file = Registry::file(&install::config_home(&env)?);
        let registry = Registry::load(&file)?;
        let Some(instance) = registry.instances.get(slug) else {
            anyhow::bail!(
                "no doc-serve instance {slug:?} is registered in {}: run \
                 `doc-serve install systemd --name {slug}` in the project",
                file.display()
            );
        };
        if !instance.root.is_dir() {
            anyhow::bail!(
                "instance {slug:?} serves {}, which is not a directory any more: \
                 `doc-serve uninstall systemd --name {slug}` removes the instance",
                instance.root.display()
            );
        }
        let project = Project::resolve(
            Some((&instance.root, RootReason::Instance)),
            &instance.root,
            env.home.as_deref(),
        )?;
        Ok(Context { env, project })
    }

    /// The context of the shared daemon (`--shared`): its state dir is ~/.doc-serve.
    pub fn shared_daemon(env: Environment) -> anyhow::Result<Context> {
        let home = crate::daemon::Home::of(&env)?;
        Ok(Context {
            env,
            project: home.daemon,
        })
    }

    /// For a project in shared mode, the shared daemon's context; `None` otherwise.
    pub fn daemon_of(&self) -> anyhow::Result<Option<Context>> {
        if self.project.is_shared_daemon() || self.config(&Flags::default())?.mode != Mode::Shared {
            return Ok(None);
        }
        Context::shared_daemon(self.env.clone()).map(Some)
    }

    /// The settings with `flags` on top (their warnings logged): the project's, or the
    /// shared daemon's. A project in shared mode keeps its index and logs in the
    /// daemon's home (see [`crate::daemon`]), so that a standalone command works on the
    /// index the daemon serves.
    pub fn config(&self, flags: &Flags) -> anyhow::Result<Config> {
        let config = self.load_config(flags)?;
        // A command may load the settings more than once (its own, then to find the
        // shared daemon, then to start a resident): each warning is shown once.
        static SHOWN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let mut shown = SHOWN.lock().unwrap_or_else(|p| p.into_inner());
        for w in &config.warnings {
            if !shown.contains(w) {
                tracing::warn!("{w}");
                shown.push(w.clone());
            }
        }
        Ok(config)
    }

    /// [`Context::config`] without logging its warnings.
    pub fn load_config(&self, flags: &Flags) -> anyhow::Result<Config> {
        let load = if self.project.is_shared_daemon() {
            Config::load_shared
        } else {
            Config::load
        };
        let mut config = load(&self.project.config_file(), &self.env, flags)?;
        if config.mode == Mode::Shared && !self.project.is_shared_daemon() {
            let home = crate::daemon::Home::of(&self.env)?;
            let daemon =
                Config::load_shared(&home.daemon.config_file(), &self.env, &Flags::default())?;
            home.place(&mut config, &daemon, &self.project);
        }
        Ok(config)
    }
}

/// Parses the command line, runs the command, and returns the exit code.
pub fn run() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    // These describe the CLI itself: they must work outside any project (package builds
    // run them), so they come before the environment and the project are read.
    match cli.command {
        Command::Completions { shell } => return docs::completions(shell),
        Command::Man => return docs::man(),
        _ => {}
    }
    let env = Environment::capture()?;
    let serving = matches!(cli.command, Command::Serve(_));
    crate::logging::init(
        env.get("DOC_SERVE_LOG"),
        // tantivy logs every commit and deleted file at info.
        if serving {
            "info,tantivy=warn"
        } else {
            "warn,tantivy=warn"
        },
        serving,
        env.terminal
            .colour(cli.color, std::io::stderr().is_terminal()),
    );
    if let Command::Model(cmd) = &cli.command {
        return model::run(cmd, &env, cli.path.as_deref());
    }
    let ctx = match &cli.command {
        Command::Serve(ServeArgs {
            instance: Some(slug),
            ..
        }) => Context::for_instance(env, slug)?,
        Command::Serve(ServeArgs { shared: true, .. })
        | Command::Start { shared: true, .. }
        | Command::Stop { shared: true, .. }
        | Command::Status { shared: true, .. } => Context::shared_daemon(env)?,
        _ => Context::new(env, cli.path.as_deref())?,
    };
    // Commands that would index or serve the project refuse a root nobody chose that
    // holds the whole home directory (`where` shows it, with the reason).
    let indexes = matches!(
        cli.command,
        Command::Init { .. }
            | Command::Serve(_)
            | Command::Start { .. }
            | Command::Index { .. }
            | Command::Query { .. }
            | Command::Read { .. }
            | Command::Mcp
            | Command::Open { .. }
    );
    if indexes && let Some(why) = ctx.project.too_broad(ctx.env.home.as_deref()) {
        anyhow::bail!(why);
    }
    match cli.command {
        Command::Init { mode, json } => init::run(&ctx, mode.into(), json),
        Command::Serve(args) => serve::run(&ctx, &args),
        Command::Start {
            idle_timeout, json, ..
        } => lifecycle::start(&ctx, idle_timeout, json),
        Command::Stop { force, json, .. } => lifecycle::stop(&ctx, force, json),
        Command::Status { json, space, .. } => inspect::status(&ctx, json, space),
        Command::Where { json } => inspect::where_(&ctx, json),
        Command::Open { print, json } => open::run(&ctx, print, json),
        Command::Mcp => bridge::run(ctx),
        Command::Index { full, json } => search::index(&ctx, full, json),
        Command::Query {
            query,
            limit,
            offset,
            path_prefix,
            wait,
            max_tokens,
            mode,
            explain,
            hyperlink,
            json,
        } => {
            let look = hits::Look::new(&ctx.env.terminal, cli.color, hyperlink);
            let req = crate::api::Search {
                mode: mode.map(Into::into),
                explain: explain.then_some(true),
                q: query.join(" "),
                limit: Some(limit),
                offset: Some(offset),
                path_prefix,
                wait,
                max_tokens,
            };
            search::query(&ctx, &req, json, &look)
        }
        Command::Read {
            target,
            lines,
            heading,
            max_tokens,
            json,
        } => search::read(&ctx, &target, lines.as_deref(), heading, max_tokens, json),
        Command::Doctor { json } => doctor::run(&ctx, json),
        Command::Install { supervisor, args } => install::install(&ctx, supervisor, &args),
        Command::Uninstall { supervisor, args } => install::uninstall(&ctx, supervisor, &args),
        Command::Completions { .. } | Command::Man | Command::Model(_) => {
            unreachable!("answered before Context")
        }
    }
}

/// Opens the project's index for a standalone command; a project in shared mode is
/// registered with the shared daemon's home first (its index lives there).
fn open_indexer(ctx: &Context, config: &Config) -> anyhow::Result<crate::ingest::sync::Indexer> {
    if config.mode == Mode::Shared {
        crate::daemon::Home::of(&ctx.env)?.register(&ctx.project.root)?;
    }
    crate::ingest::sync::Indexer::open(&ctx.project, config).context("cannot open the index")
}

/// A small runtime for client commands: one thread, started in microseconds.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `--mode`'s values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SearchMode {
    Lexical,
    Semantic,
    Hybrid,
}

impl From<SearchMode> for crate::engine::search::Mode {
    fn from(m: SearchMode) -> Self {
        use crate::engine::search::Mode;
        match m {
            SearchMode::Lexical => Mode::Lexical,
            SearchMode::Semantic => Mode::Semantic,
            SearchMode::Hybrid => Mode::Hybrid,
        }
    }
}

/// A progress bar on stderr drawn with `template` (indicatif's), filling with `=>`.
fn progress_bar(template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// A whole number of at least 1, for `--limit`.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number of at least 1, not {s:?}")),
    }
}
