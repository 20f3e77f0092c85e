//! Where a link of a rendered document may lead (see [`super`]): decided here, on the
//! server, by an allowlist, so that a page showing the tree never has to judge a URL.
//! An `http:`, `https:` or `mailto:` address is kept as written; a relative one becomes
//! a project path (resolved against the linking file's directory) and an anchor; any
//! other (`javascript:` in any case or encoding, `data:`, `vbscript:`, `file:`, a
//! network path `//host`, one with a control character or leading white space, one
//! climbing out of the root) leads nowhere, and the link is shown as its text alone.
//!
//! pulldown-cmark hands over destinations with entities and backslash escapes already
//! decoded (`&#106;avascript:` arrives as `javascript:`), so what is judged is what a
//! browser would follow.

use pulldown_cmark::LinkType;

/// Where a link leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// An `http:`, `https:` or `mailto:` address, as written.
    Href(String),
    /// A document of the project, by its path from the root, and an anchor in it.
    Doc { doc: String, anchor: Option<String> },
}

/// The schemes a link may keep.
const SCHEMES: &[&str] = &["http", "https", "mailto"];

/// Where `dest`, a link of the document `here` (its path from the root), leads; `None`
/// for nowhere (see the module doc).
pub(super) fn classify(dest: &str, kind: LinkType, here: &str) -> Option<Target> {
    if dest.is_empty() || dest.starts_with(char::is_whitespace) || dest.contains(char::is_control) {
        return None;
    }
    if kind == LinkType::Email {
        // `<someone@example.org>`: the address without its scheme.
        return (!dest.contains(':')).then(|| Target::Href(format!("mailto:{dest}")));
    }
    // A scheme is what comes before a `:` that precedes any `/`, `?` or `#`.
    let colon = dest.find(':');
    let delimiter = dest.find(['/', '?', '#']);
    if let Some(colon) = colon
        && delimiter.is_none_or(|d| colon < d)
    {
        let scheme = &dest[..colon];
        return SCHEMES
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme))
            .then(|| Target::Href(dest.to_owned()));
    }
    // `//host/x` is another host; browsers read `\` as `/` in web addresses.
    if dest.starts_with("//") || dest.contains('\\') {
        return None;
    }
    let (before, fragment) = dest.split_once('#').unwrap_or((dest, ""));
    let path = before.split_once('?').map_or(before, |(p, _)| p);
    let anchor = decoded(fragment)?;
    let anchor = (!anchor.is_empty()).then_some(anchor);
    let path = decoded(path)?;
    if path.is_empty() {
        return Some(Target::Doc {
            doc: here.to_owned(),
            anchor,
        });
    }
    Some(Target::Doc {
        doc: resolve(here, &path)?,
        anchor,
    })
}

/// `text` percent-decoded; `None` when that gives a control character (or not UTF-8).
fn decoded(text: &str) -> Option<String> {
    let text = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()?;
    (!text.contains(char::is_control)).then(|| text.into_owned())
}

/// `path` from the directory of `here` (from the root when it starts with `/`), without
/// `.` and empty names; `None` when a `..` climbs out of the root or nothing is left.
fn resolve(here: &str, path: &str) -> Option<String> {
    let mut names: Vec<&str> = if path.starts_with('/') {
        Vec::new()
    } else {
        let mut dir: Vec<&str> = here.split('/').collect();
        dir.pop();
        dir
    };
    for name in path.split('/') {
        match name {
            "" | "." => {}
            ".." => {
                names.pop()?;
            }
            name => names.push(name),
        }
    }
    (!names.is_empty()).then(|| names.join("/"))
}
