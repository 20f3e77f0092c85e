//! The command line: argument definitions and dispatch, one file per command family.
//!
//! Commands return an exit code (see [`crate::error::exit`]) or an error, which `main`
//! prints with its whole chain. Only [`output`] writes to stdout.

mod init;
mod inspect;
mod lifecycle;
mod output;
mod search;
mod serve;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, Environment, Flags, Mode};
use crate::project::{Project, RootReason};

const ABOUT: &str =
    "Fast local search over a project's documentation, for people and AI assistants";

const LONG_ABOUT: &str = "\
doc-serve indexes a project's Markdown, reStructuredText, AsciiDoc and text files and \
answers ranked, sectioned results over a JSON HTTP API, the command line and MCP.

A project's resident server is found through .claude/doc-serve/runtime.json. It runs \
under systemd or launchd (socket activation), or on its own (`doc-serve start`).";

const AFTER_HELP: &str = "\
Examples:
  doc-serve where              show the project root and how clients find its server
  doc-serve start              start this project's resident (or report the running one)
  doc-serve status --json      machine-readable state, including stale files
  doc-serve stop               stop the resident

Exit codes: 0 ok, 1 nothing found (status: not running), 2 error.
Environment: DOC_SERVE_PROJECT (project root), DOC_SERVE_LOG (log filter, e.g. debug),
and DOC_SERVE_<KEY> for any config.json key (e.g. DOC_SERVE_PORT=8080).";

#[derive(Debug, Parser)]
#[command(name = "doc-serve", version, about = ABOUT, long_about = LONG_ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Project root; default: found from the current directory (see `doc-serve where`)
    #[arg(long, global = true, value_name = "DIR")]
    pub path: Option<PathBuf>,

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
        #[arg(long)]
        json: bool,
    },
    /// Stop the project's resident (only if it is provably ours) and clean stale files
    Stop {
        /// Kill it (SIGKILL) if it has not exited after SIGTERM and the drain timeout
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show whether a resident runs, where, and explain any stale files
    ///
    /// Exits 0 when a healthy resident answers, 1 otherwise.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Bring the index in line with the files on disk (only changed files are read)
    Index {
        /// Re-read and re-index every file, changed or not
        #[arg(long)]
        full: bool,
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
        /// Most hits to show
        #[arg(long, short = 'n', default_value_t = 10)]
        limit: usize,
        /// Only hits whose path starts with this
        #[arg(long, value_name = "PREFIX")]
        path_prefix: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show the project root, why it was chosen, and where clients look for a server
    Where {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
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

    /// Loads the configuration with `flags` on top, logging its warnings.
    pub fn config(&self, flags: &Flags) -> anyhow::Result<Config> {
        let config = Config::load(&self.project.config_file(), &self.env, flags)?;
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        Ok(config)
    }
}

/// Parses the command line, runs the command, and returns the exit code.
pub fn run() -> anyhow::Result<i32> {
    let cli = Cli::parse();
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
    );
    let ctx = Context::new(env, cli.path.as_deref())?;
    match cli.command {
        Command::Init { mode, json } => init::run(&ctx, mode.into(), json),
        Command::Serve(args) => serve::run(&ctx, &args),
        Command::Start { idle_timeout, json } => lifecycle::start(&ctx, idle_timeout, json),
        Command::Stop { force, json } => lifecycle::stop(&ctx, force, json),
        Command::Status { json } => inspect::status(&ctx, json),
        Command::Where { json } => inspect::where_(&ctx, json),
        Command::Index { full, json } => search::index(&ctx, full, json),
        Command::Query {
            query,
            limit,
            path_prefix,
            json,
        } => search::query(&ctx, &query.join(" "), limit, path_prefix, json),
    }
}

/// A small runtime for client commands: one thread, started in microseconds.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
