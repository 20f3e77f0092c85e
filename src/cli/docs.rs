//! Documents generated from the CLI definition: shell completions and the man page.
//!
//! Both describe the command line itself, so they never resolve a project, read a
//! config or start logging: `doc-serve completions bash` works anywhere, which is what a
//! package build needs. The man page is one page, doc-serve(1), with a section per
//! command, so that it names no per-command pages that nobody ships.

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
    if let Some(after) = cmd.get_after_help() {
        tail.control("SH", ["NOTES"]).control("nf", []);
        for line in after.to_string().lines() {
            tail.text([roman(line)]);
        }
        tail.control("fi", []);
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
        assert!(!page.contains(".SS \"doc-serve man\""), "man is hidden");
        assert!(!page.contains(".SS \"doc-serve help\""));
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
