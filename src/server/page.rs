//! The search page's files, built into the binary (`src/ui/`): no CDN, no network, no
//! build step. They hold no data and are public; the page then reads through a
//! browser session (README, "Search page").
//!
//! Every file is served with a Content-Security-Policy that allows script and style
//! only from these files (no inline script, no `style` attribute, no `eval`), no
//! frames, no forms and requests only to this origin; Trusted Types with no policy
//! make any HTML written from a string throw, so the page can build its DOM only from
//! elements and text.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// One file of the page.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    etag: OnceLock<String>,
}

impl Asset {
    const fn new(name: &'static str, content_type: &'static str, bytes: &'static [u8]) -> Self {
        Asset {
            name,
            content_type,
            bytes,
            etag: OnceLock::new(),
        }
    }

    /// The version and the start of the file's SHA-256, quoted.
    pub fn etag(&self) -> &str {
        self.etag.get_or_init(|| {
            let digest = Sha256::digest(self.bytes);
            format!(
                "\"{}-{}\"",
                crate::VERSION,
                crate::engine::hex(&digest[..8])
            )
        })
    }

    /// True when `if_none_match` (the header's value) names this version.
    pub fn matches(&self, if_none_match: Option<&str>) -> bool {
        if_none_match.is_some_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag.trim_start_matches("W/") == self.etag())
        })
    }
}

pub static INDEX: Asset = Asset::new(
    "index.html",
    "text/html; charset=utf-8",
    include_bytes!("../ui/index.html"),
);

/// The files under `/ui/`.
pub static FILES: [Asset; 4] = [
    Asset::new(
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/app.js"),
    ),
    // The reader, imported by app.js.
    Asset::new(
        "doc.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/doc.js"),
    ),
    Asset::new(
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../ui/app.css"),
    ),
    Asset::new(
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../ui/icon.svg"),
    ),
];

/// The file `/ui/{name}` names.
pub fn file(name: &str) -> Option<&'static Asset> {
    FILES.iter().find(|a| a.name == name)
}

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// Headers every file of the page is sent with, besides its type and ETag.
pub const HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CSP),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("cache-control", "no-cache"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_name_the_version_and_content() {
        let tag = INDEX.etag();
        assert!(tag.starts_with(&format!("\"{}-", crate::VERSION)), "{tag}");
        assert_ne!(tag, FILES[0].etag());
        assert!(INDEX.matches(Some(tag)));
        assert!(INDEX.matches(Some(&format!("\"x\", W/{tag}"))));
        assert!(!INDEX.matches(Some("\"x\"")));
        assert!(!INDEX.matches(None));
    }

    #[test]
    fn the_page_links_only_files_it_serves() {
        let html = std::str::from_utf8(INDEX.bytes).unwrap();
        for (at, _) in html.match_indices("/ui/") {
            let name: String = html[at + 4..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .collect();
            assert!(file(&name).is_some(), "{name}");
        }
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains("style="), "inline style");
    }
}
