//! The query language: forgiving by design.
//!
//! `words` are ranked (documents with all of them first, never a strict AND that
//! returns nothing), `"exact phrases"` must appear, `-word` and `-"phrase"` exclude,
//! `path:docs/guide` keeps hits under a path prefix. Nothing here can fail: an
//! unbalanced quote or a stray `-` is read as plain text.

/// A query taken apart.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub words: Vec<String>,
    pub phrases: Vec<String>,
    pub excluded: Vec<String>,
    pub path_prefixes: Vec<String>,
}

impl Parsed {
    pub fn has_positive_terms(&self) -> bool {
        !self.words.is_empty() || !self.phrases.is_empty()
    }
}

pub fn parse(q: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut rest = q.trim();
    while !rest.is_empty() {
        let negate = rest.starts_with('-') && rest.len() > 1 && !rest[1..].starts_with([' ', '-']);
        let body = if negate { &rest[1..] } else { rest };
        let (item, quoted, tail) = take_item(body);
        rest = tail.trim_start();
        if item.is_empty() {
            continue;
        }
        if negate {
            out.excluded.push(item.to_owned());
        } else if quoted {
            out.phrases.push(item.to_owned());
        } else if let Some(prefix) = item.strip_prefix("path:").filter(|p| !p.is_empty()) {
            out.path_prefixes.push(
                prefix
                    .trim_start_matches("./")
                    .trim_start_matches('/')
                    .to_owned(),
            );
        } else {
            out.words.push(item.to_owned());
        }
    }
    out
}

/// The next item: a quoted phrase (if its quote closes) or a whitespace-separated word.
fn take_item(s: &str) -> (&str, bool, &str) {
    if let Some(inner) = s.strip_prefix('"') {
        // A phrase (an empty one is nothing: `""` alone is an empty query).
        if let Some(end) = inner.find('"') {
            return (inner[..end].trim(), true, &inner[end + 1..]);
        }
        // An unclosed quote is just a character of its word: `"` alone is
        // punctuation, which matches nothing.
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    (&s[..end], false, &s[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_a_query() {
        let p = parse(r#"tokio runtime "block on" -async -"spawn blocking" path:docs/ --flag"#);
        assert_eq!(p.words, ["tokio", "runtime", "--flag"]);
        assert_eq!(p.phrases, ["block on"]);
        assert_eq!(p.excluded, ["async", "spawn blocking"]);
        assert_eq!(p.path_prefixes, ["docs/"]);
    }

    #[test]
    fn odd_input_is_text() {
        assert_eq!(parse(r#""unclosed quote"#).words, ["\"unclosed", "quote"]);
        // An unclosed quote alone is punctuation, a word that matches nothing; an
        // empty phrase is nothing.
        assert_eq!(parse(r#"""#).words, ["\""]);
        assert_eq!(parse(r#""""#), Parsed::default());
        assert_eq!(parse(r#""" x"#).words, ["x"]);
        assert_eq!(parse("a - b").words, ["a", "-", "b"]);
        assert_eq!(parse("path:").words, ["path:"]);
        assert_eq!(parse("   "), Parsed::default());
        assert!(!parse("-only").has_positive_terms());
        let _ = parse("\"-\"-\"\"-");
        let _ = parse("é\"ü -\" path:ß");
    }
}
