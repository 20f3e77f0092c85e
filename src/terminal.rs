//! What the terminal is given: colour and OSC 8 hyperlinks, decided from the `--color`
//! and `--hyperlink` flags and the environment (README, "Terminal output").
//!
//! It only decides; `cli` prints and `logging` writes. The rules are ripgrep's: an
//! explicit `--color always` or `never` wins over the environment; `auto` colours a
//! terminal unless NO_COLOR holds a value (no-color.org) or TERM is unset or `dumb`.
//! Hyperlinks are escape sequences too, so they are written only with colour, and in
//! `auto` only to a terminal known to show them: an unknown one may print the escape
//! as garbage.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};

/// `--color` and `--hyperlink`: `auto` decides from the stream and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum When {
    #[default]
    Auto,
    Always,
    Never,
}

/// The variables that decide, captured once with the rest of the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermEnv {
    /// NO_COLOR holds a value (an empty one does not count, as no-color.org says).
    pub no_color: bool,
    /// TERM, when set.
    pub term: Option<String>,
    /// The terminal is one known to show OSC 8 links, and no multiplexer sits between.
    pub links_known: bool,
}

impl TermEnv {
    pub fn capture() -> TermEnv {
        TermEnv::from_vars(|name| std::env::var_os(name))
    }

    /// [`TermEnv::capture`] from any source of variables (tests give their own).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> TermEnv {
        let text = |name: &str| {
            var(name)
                .and_then(|v| v.into_string().ok())
                .filter(|v| !v.is_empty())
        };
        let term = text("TERM");
        // tmux (before 3.4, or without its `hyperlinks` feature) and screen drop or
        // mangle OSC 8; the outer terminal's variables are still inherited inside them.
        let multiplexed = var("TMUX").is_some() || var("STY").is_some();
        let by_program = text("TERM_PROGRAM")
            .is_some_and(|p| ["iTerm.app", "WezTerm", "vscode", "ghostty"].contains(&p.as_str()));
        let by_term = term.as_deref().is_some_and(|t| {
            [
                "xterm-kitty",
                "xterm-ghostty",
                "wezterm",
                "foot",
                "alacritty",
                "contour",
            ]
            .iter()
            .any(|known| t.starts_with(known))
        });
        // VTE 0.50 (GNOME Terminal, Tilix, ...) shows OSC 8 links; Windows Terminal too
        // (WSL).
        let vte = text("VTE_VERSION")
            .and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|v| v >= 5000);
        let windows_terminal = var("WT_SESSION").is_some();
        TermEnv {
            no_color: var("NO_COLOR").is_some_and(|v| !v.is_empty()),
            term,
            links_known: !multiplexed && (by_program || by_term || vte || windows_terminal),
        }
    }

    /// Whether to colour a stream, `is_terminal` or not.
    pub fn colour(&self, when: When, is_terminal: bool) -> bool {
        match when {
            When::Always => true,
            When::Never => false,
            When::Auto => {
                is_terminal && !self.no_color && self.term.as_deref().is_some_and(|t| t != "dumb")
            }
        }
    }

    /// How to link paths on a stream that gets `colour` or not; `None`: no links.
    pub fn hyperlinks(&self, when: When, colour: bool) -> Option<Hyperlinks> {
        let on = colour
            && match when {
                When::Always => true,
                When::Never => false,
                When::Auto => self.links_known,
            };
        on.then(|| Hyperlinks {
            host: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default(),
            // kitty opens `file://...#LINE` at that line (its open-actions match the
            // fragment); GLib refuses a file URI with a fragment, so no one else gets it.
            line_fragment: self.term.as_deref() == Some("xterm-kitty"),
        })
    }
}

/// Everything but RFC 3986's unreserved characters and the path separator is encoded,
/// controls and escapes included.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// OSC 8 links to files: `file://HOST/PATH` (RFC 8089), as ripgrep's default format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hyperlinks {
    host: String,
    line_fragment: bool,
}

impl Hyperlinks {
    /// The URL of line `line` of the file at `path` (absolute).
    pub fn url(&self, path: &Path, line: u64) -> String {
        let host = percent_encode(self.host.as_bytes(), PATH);
        let path = percent_encode(path.as_os_str().as_bytes(), PATH);
        let mut url = format!("file://{host}{path}");
        if self.line_fragment {
            url.push_str(&format!("#{line}"));
        }
        url
    }

    /// `text` as a link to `url`.
    pub fn wrap(url: &str, text: &str) -> String {
        format!("\x1b]8;;{url}\x1b\\{text}\x1b]8;;\x1b\\")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> TermEnv {
        TermEnv::from_vars(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        })
    }

    #[test]
    fn auto_colours_a_terminal_unless_no_color_or_a_dumb_term() {
        let xterm = env(&[("TERM", "xterm-256color")]);
        assert!(xterm.colour(When::Auto, true));
        assert!(!xterm.colour(When::Auto, false));
        for vars in [
            &[("TERM", "xterm"), ("NO_COLOR", "1")][..],
            &[("TERM", "dumb")],
            &[],
        ] {
            let e = env(vars);
            assert!(!e.colour(When::Auto, true), "{vars:?}");
            assert!(e.colour(When::Always, false), "{vars:?}: always wins");
        }
        // An empty NO_COLOR is no request (no-color.org).
        assert!(env(&[("TERM", "xterm"), ("NO_COLOR", "")]).colour(When::Auto, true));
        assert!(!xterm.colour(When::Never, true));
    }

    #[test]
    fn links_go_only_with_colour_and_in_auto_only_to_known_terminals() {
        let vte = env(&[("TERM", "xterm-256color"), ("VTE_VERSION", "7600")]);
        assert!(vte.hyperlinks(When::Auto, true).is_some());
        assert!(vte.hyperlinks(When::Auto, false).is_none());
        assert!(vte.hyperlinks(When::Always, false).is_none());
        assert!(vte.hyperlinks(When::Never, true).is_none());
        let tmux = env(&[("TERM", "screen"), ("VTE_VERSION", "7600"), ("TMUX", "x")]);
        assert!(tmux.hyperlinks(When::Auto, true).is_none());
        assert!(tmux.hyperlinks(When::Always, true).is_some());
        let old_vte = env(&[("TERM", "xterm"), ("VTE_VERSION", "4802")]);
        assert!(old_vte.hyperlinks(When::Auto, true).is_none());
        for known in [
            &[("TERM", "xterm-kitty")][..],
            &[("TERM", "xterm-256color"), ("TERM_PROGRAM", "WezTerm")],
            &[("TERM", "xterm-256color"), ("WT_SESSION", "abc")],
        ] {
            assert!(env(known).links_known, "{known:?}");
        }
    }

    #[test]
    fn urls_are_percent_encoded_and_only_kitty_gets_the_line() {
        let links = Hyperlinks {
            host: "box".into(),
            line_fragment: false,
        };
        let url = links.url(Path::new("/p/my docs/a#b\x1b.md"), 7);
        assert_eq!(url, "file://box/p/my%20docs/a%23b%1B.md");
        let kitty = env(&[("TERM", "xterm-kitty")]).hyperlinks(When::Auto, true);
        assert!(
            kitty
                .unwrap()
                .url(Path::new("/a.md"), 7)
                .ends_with("/a.md#7")
        );
    }
}
