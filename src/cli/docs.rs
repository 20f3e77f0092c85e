//! Documents generated from the CLI definition: shell completions and the man page.
//!
//! Both describe the command line itself, so they never resolve a project, read a
//! config or start logging: `doc-serve completions bash` works anywhere, which is what a
//! package build needs. The man page is one page, doc-serve(1), with a section per
//! command, so that it names no per-command pages that nobody ships. Its EXAMPLES,
//! EXIT STATUS and ENVIRONMENT come from the same tables as the end of `--help`.

use std::io;

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use super::{Cli, output};
use crate::error::exit;

/// Prints the completion script for `shell`.
pub fn completions(shell: Shell) -> anyhow::Result<i32> {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    output::emit(false, &(), |out| out.write_all(&script))?;
    Ok(exit::OK)
}

/// Prints doc-serve(1) as roff.
pub fn man() -> anyhow::Result<i32> {
    let page = man_page()?;
    output::emit(false, &(), |out| out.write_all(&page))?;
    Ok(exit::OK)
}

/// Renders doc-serve(1): the top-level sections from clap_mangen, then one subsection
/// per visible command (clap_mangen's own SUBCOMMANDS section points at
/// doc-serve-COMMAND(1) pages, which we do not ship).
fn man_page() -> io::Result<Vec<u8>> {
    let cmd = Cli::command();
    let man = Man::new(cmd.clone())
        .title("DOC-SERVE")
        .manual("doc-serve manual");
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;

    Roff::new()
        .control("SH", ["COMMANDS"])
        .to_writer(&mut page)?;
    for sub in visible_subcommands(&cmd) {
        command_section(&mut page, cmd.get_name(), sub)?;
    }

    let mut tail = Roff::new();
    tail.control("SH", ["EXAMPLES"]);
    for (command, what) in EXAMPLES {
        tail.control("TP", [])
            .text([bold(*command)])
            .text([roman(*what)]);
    }
    for (heading, rows) in [("EXIT STATUS", EXIT_STATUS), ("ENVIRONMENT", ENVIRONMENT)] {
        tail.control("SH", [heading]);
        for e in rows {
            tail.control("TP", [])
                .text([bold(e.name)])
                .text([roman(e.full)]);
        }
    }
    tail.control("SH", ["FILES"]);
    for (path, what) in FILES {
        tail.control("TP", [])
            .text([bold(*path)])
            .text([roman(*what)]);
    }
    tail.control("SH", ["SEE ALSO"]).text([roman(SEE_ALSO)]);
    tail.to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    Ok(once_preamble(&page))
}

/// The end of `--help`: the examples, then the exit codes and the variables in brief.
pub fn after_help() -> String {
    let width = EXAMPLES.iter().map(|(c, _)| c.len()).max().unwrap_or(0) + 2;
    let mut help = String::from("Examples:\n");
    for (command, what) in EXAMPLES {
        help.push_str(&format!("  {command:<width$}{what}\n"));
    }
    let codes: Vec<String> = EXIT_STATUS
        .iter()
        .map(|e| format!("{} {}", e.name, e.brief))
        .collect();
    let vars: Vec<String> = ENVIRONMENT
        .iter()
        .filter(|e| !e.brief.is_empty())
        .map(|e| format!("{} ({})", e.name, e.brief))
        .collect();
    help.push_str(&format!(
        "\nExit status: {}.\nEnvironment: {}. The man page (doc-serve man) has them in full.",
        codes.join("; "),
        vars.join(", ")
    ));
    help
}

/// A row of EXIT STATUS or ENVIRONMENT: `brief` for `--help` (empty: left out there),
/// `full` for the man page.
struct Entry {
    name: &'static str,
    brief: &'static str,
    full: &'static str,
}

const EXAMPLES: &[(&str, &str)] = &[
    (
        "doc-serve where",
        "show the project root and how clients find its server",
    ),
    (
        "doc-serve start",
        "start this project's resident (or report the running one)",
    ),
    (
        "doc-serve query tokio runtime",
        "search: each hit starts with path:line:",
    ),
    (
        "doc-serve query --json WORDS | jq",
        "the answer as /query gives it",
    ),
    (
        "doc-serve status --json",
        "machine-readable state, including stale files",
    ),
    ("doc-serve stop", "stop the resident"),
    (
        "doc-serve doctor",
        "check the set-up; each problem comes with its fix",
    ),
];

/// Exit codes, as `crate::error::exit` defines them.
const EXIT_STATUS: &[Entry] = &[
    Entry {
        name: "0",
        brief: "ok",
        full: "Success.",
    },
    Entry {
        name: "1",
        brief: "nothing found (query: no hit, said on stderr; status: not running; \
                doctor: a check failed)",
        full: "Nothing found: query found no hit, status found no healthy resident, doctor \
               found a failed check. A query's \"no results\" goes to stderr and stdout \
               stays empty, so a pipe reads nothing; with --json the answer (with no hits) \
               is still printed on stdout.",
    },
    Entry {
        name: "2",
        brief: "error",
        full: "An error. The message on stderr says what and where.",
    },
];

const ENVIRONMENT: &[Entry] = &[
    Entry {
        name: "DOC_SERVE_PROJECT",
        brief: "project root",
        full: "The project root, as --path names it (--path wins).",
    },
    Entry {
        name: "DOC_SERVE_LOG",
        brief: "log filter, e.g. debug",
        full: "Which log lines stderr shows: a tracing filter such as debug or \
               info,tantivy=warn. Default: warn (info for serve).",
    },
    Entry {
        name: "DOC_SERVE_<KEY>",
        brief: "any config.json key, e.g. DOC_SERVE_PORT=8080",
        full: "Any config.json key, e.g. DOC_SERVE_PORT=8080. It wins over config.json and \
               loses to a flag.",
    },
    Entry {
        name: "DOC_SERVE_MODEL_DIR",
        brief: "the model cache",
        full: "Where embedding models are installed. Default: \
               $XDG_CACHE_HOME/doc-serve/models, else ~/.cache/doc-serve/models.",
    },
    Entry {
        name: "DOC_SERVE_HF_ENDPOINT",
        brief: "the model hub",
        full: "The hub model fetch downloads from. Default: https://huggingface.co.",
    },
    Entry {
        name: "NO_COLOR",
        brief: "no colour or links with --color auto",
        full: "Any value but the empty one: no colour and no hyperlinks with --color auto, in \
               hits and log lines alike. An explicit --color always or never wins over it.",
    },
    Entry {
        name: "TERM",
        brief: "dumb or unset: no colour with --color auto",
        full: "Unset or dumb: no colour with --color auto. Whether it, TERM_PROGRAM, \
               VTE_VERSION or WT_SESSION names a terminal known to show OSC 8 links decides \
               --hyperlink auto; inside tmux or screen (TMUX, STY set) it never links.",
    },
    Entry {
        name: "HOME, XDG_CONFIG_HOME, XDG_CACHE_HOME, XDG_RUNTIME_DIR",
        brief: "",
        full: "Where the instance registry, user units, model cache and instance sockets \
               live.",
    },
    Entry {
        name: "LISTEN_FDS, LISTEN_FDNAMES, NOTIFY_SOCKET, JOURNAL_STREAM",
        brief: "",
        full: "Set by systemd for serve: inherited sockets, readiness, and logging to the \
               journal.",
    },
];

const FILES: &[(&str, &str)] = &[
    (
        "PROJECT/.claude/doc-serve/config.json",
        "The project's settings (doc-serve init writes it).",
    ),
    (
        "PROJECT/.claude/doc-serve/runtime.json",
        "How clients reach the project's resident: base URL, token, PID. Written once it \
         answers, removed on a clean exit.",
    ),
    (
        "PROJECT/.claude/doc-serve/logs/events.jsonl",
        "Lifecycle events, one JSON object a line.",
    ),
    (
        "~/.config/doc-serve/instances.json",
        "Instance slugs and the project roots they serve (doc-serve install writes it).",
    ),
    (
        "/usr/lib/systemd/user/doc-serve@.socket, doc-serve@.service",
        "systemd user units for one project's resident (instance = the project's slug).",
    ),
    (
        "/usr/lib/systemd/user/doc-serve.socket, doc-serve.service",
        "systemd user units for the per-user shared daemon.",
    ),
];

const SEE_ALSO: &str = "systemctl(1), systemd.socket(5), systemd.service(5), launchctl(1)";

/// One `.SS` per command: its synopsis, description and options; then its own
/// subcommands, recursively (`install systemd`).
fn command_section(page: &mut Vec<u8>, parent: &str, sub: &clap::Command) -> io::Result<()> {
    let name = format!("{parent} {}", sub.get_name());
    Roff::new().control("SS", [name.as_str()]).to_writer(page)?;
    // Help flags and the `help` command are the same everywhere, and global options are
    // in the top-level OPTIONS section (an unbuilt subcommand does not carry them).
    let man = Man::new(
        sub.clone()
            .bin_name(&name)
            .disable_help_flag(true)
            .disable_help_subcommand(true),
    );
    for render in [
        Man::render_synopsis_section,
        Man::render_description_section,
        Man::render_options_section,
    ] {
        let mut part = Vec::new();
        render(&man, &mut part)?;
        page.extend(without_headings(&part));
    }
    for nested in visible_subcommands(sub) {
        command_section(page, &name, nested)?;
    }
    Ok(())
}

fn visible_subcommands(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// Drops `.SH` lines: clap_mangen opens every section with one, and here its sections
/// become parts of a command's `.SS` subsection. Each part starts a new paragraph.
fn without_headings(roff: &[u8]) -> Vec<u8> {
    let mut out = b".PP\n".to_vec();
    for line in roff.split_inclusive(|&b| b == b'\n') {
        if !line.starts_with(b".SH") {
            out.extend_from_slice(line);
        }
    }
    out
}

/// Keeps the first copy of the string definitions roff prepends to every rendered
/// part (`.ie \n(.g .ds Aq ...`): one per page is enough.
fn once_preamble(page: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(page.len());
    let mut seen = 0;
    for line in page.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".ie \\n(.g .ds Aq") || line.starts_with(b".el .ds Aq") {
            seen += 1;
            if seen > 2 {
                continue;
            }
        }
        out.extend_from_slice(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> String {
        String::from_utf8(man_page().unwrap()).unwrap()
    }

    #[test]
    fn man_page_has_a_section_per_visible_command() {
        let page = page();
        assert!(page.contains("\n.TH DOC-SERVE 1 "), "{page}");
        assert_eq!(page.matches(".ds Aq").count(), 2, "{page}");
        for sub in visible_subcommands(&Cli::command()) {
            let heading = format!(".SS \"doc-serve {}\"", sub.get_name());
            assert!(page.contains(&heading), "no {heading} in\n{page}");
        }
        assert!(page.contains(".SS \"doc-serve man\""), "man is listed");
        assert!(!page.contains(".SS \"doc-serve help\""));
        for section in ["EXAMPLES", "\"EXIT STATUS\"", "ENVIRONMENT", "FILES"] {
            assert_eq!(
                page.matches(&format!(".SH {section}\n")).count(),
                1,
                "{page}"
            );
        }
    }

    #[test]
    fn exit_status_and_environment_cover_the_codes_and_variables() {
        let codes: Vec<&str> = EXIT_STATUS.iter().map(|e| e.name).collect();
        let defined = [exit::OK, exit::NOTHING, exit::ERROR].map(|c| c.to_string());
        assert_eq!(codes, defined);
        let help = after_help();
        for var in crate::config::NON_CONFIG_VARS
            .iter()
            .chain(&["NO_COLOR", "TERM"])
        {
            let e = ENVIRONMENT.iter().find(|e| e.name == *var);
            assert!(e.is_some(), "{var} missing");
            assert!(help.contains(&format!("{var} (")), "{var} not in {help}");
        }
        assert!(help.contains("; 1 nothing found (query: no hit"), "{help}");
    }

    /// Every argument of every command says what it is for (positional values of an
    /// enum list their values instead).
    #[test]
    fn every_flag_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let positional_enum = arg.is_positional() && !arg.get_possible_values().is_empty();
                if arg.get_help().is_none() && !positional_enum {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        let mut cmd = Cli::command();
        cmd.build();
        walk(&cmd, "doc-serve", &mut missing);
        assert!(missing.is_empty(), "no help: {missing:?}");
    }

    #[test]
    fn man_page_points_at_no_missing_pages() {
        let page = page();
        assert!(!page.contains("doc-serve-query(1)"), "{page}");
        // Options of a command appear under it, global ones only at the top.
        assert!(page.contains("\\-\\-limit"), "{page}");
        // Global options: in the top synopsis and OPTIONS only.
        assert_eq!(page.matches("\\fB\\-\\-path\\fR").count(), 2, "{page}");
    }

    #[test]
    fn every_shell_gets_a_script_naming_the_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "doc-serve", &mut script);
            let script = String::from_utf8(script).unwrap();
            assert!(script.contains("completions") && script.contains("query"));
        }
    }
}
