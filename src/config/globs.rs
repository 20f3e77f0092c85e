//! The include and exclude globs: compiled the one way the walk compiles them, and
//! checked for the mistakes that would otherwise index nothing or too little without a
//! word (a glob no root-relative path can match, an exclude that covers the include).

/// How an include or exclude glob is compiled, here and by the walk: matching names
/// case-insensitively, as the formats are told apart (`README.MD` is Markdown).
pub fn source_glob(pattern: &str) -> std::result::Result<globset::Glob, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .case_insensitive(true)
        .build()
}

/// Why a glob can match no path the walk gives (`docs/a.md`: relative, `/`-separated,
/// without `.`, `..` or empty parts), if it cannot.
pub(super) fn matches_no_path(pattern: &str) -> Option<String> {
    if pattern.is_empty() {
        return Some("an empty glob matches nothing".into());
    }
    if let Some(rest) = pattern.strip_prefix("./").or(pattern.strip_prefix('/')) {
        return Some(format!(
            "globs are relative to the project root: write {rest:?}"
        ));
    }
    if pattern.ends_with('/') {
        return Some(format!(
            "globs match files, not directories: write \"{pattern}**\" for the files under it"
        ));
    }
    let parts: Vec<&str> = pattern.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Some("paths under the root have no empty, \".\" or \"..\" parts".into());
    }
    None
}

/// The patterns a glob's `{a,b}` alternations stand for (at most 64).
fn alternatives(pattern: &str) -> Vec<String> {
    let Some((open, close)) = pattern
        .find('{')
        .and_then(|o| Some((o, o + pattern[o..].find('}')?)))
    else {
        return vec![pattern.to_owned()];
    };
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    body.split(',')
        .flat_map(|alt| alternatives(&format!("{head}{alt}{tail}")))
        .take(64)
        .collect()
}

/// A path a glob without alternations matches, with `fill` for each wildcard, and
/// with no directory at all for a `**/` when `shallow`; `None` when it cannot tell
/// (a negated class).
fn sample(pattern: &str, fill: &str, shallow: bool) -> Option<String> {
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                let mut stars = 1;
                while chars.peek() == Some(&'*') {
                    chars.next();
                    stars += 1;
                }
                if stars > 1 && shallow && chars.peek() == Some(&'/') {
                    chars.next();
                } else {
                    out.push_str(fill);
                }
            }
            '?' => out.push('q'),
            '[' => {
                let first = chars.next()?;
                if first == '!' || first == '^' {
                    return None;
                }
                out.push(first);
                while chars.next()? != ']' {}
            }
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    Some(out)
}

/// Whether the exclude globs leave nothing of what the include globs take, judged on
/// sample paths of each include glob: `Some` with the one exclude glob that does it
/// alone, if one does. `None` when something is left, or when it cannot be told.
pub(super) fn excludes_everything(
    include: &[String],
    exclude: &[String],
) -> Option<Option<String>> {
    if exclude.is_empty() {
        return None;
    }
    let set = |globs: &[String]| {
        let mut b = globset::GlobSetBuilder::new();
        for g in globs {
            b.add(source_glob(g).ok()?);
        }
        b.build().ok()
    };
    let mut samples = Vec::new();
    for glob in include {
        let matcher = source_glob(glob).ok()?.compile_matcher();
        let before = samples.len();
        for alt in alternatives(glob) {
            for fill in ["zq7", "Wk-3"] {
                for shallow in [false, true] {
                    samples.extend(sample(&alt, fill, shallow).filter(|s| matcher.is_match(s)));
                }
            }
        }
        if samples.len() == before {
            return None;
        }
    }
    let excluded =
        |globs: &[String]| set(globs).is_some_and(|set| samples.iter().all(|s| set.is_match(s)));
    if !excluded(exclude) {
        return None;
    }
    Some(
        exclude
            .iter()
            .find(|g| excluded(std::slice::from_ref(g)))
            .cloned(),
    )
}
