//! Token estimates for answer budgets (`max_tokens`, README "HTTP API").
//!
//! A budget is kept without a tokenizer: about four characters make a token in the
//! English prose and code of documentation (OpenAI's and Anthropic's rule of thumb),
//! and an estimate that never needs a model file is the same on every transport. It
//! counts UTF-8 bytes, not characters: text in other scripts takes more tokens a
//! character (Chinese or Japanese about one each, three bytes), and a budget that
//! errs should err long.

/// The tokens `text` is estimated to take: its UTF-8 bytes divided by 4, rounded up.
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(BYTES_PER_TOKEN)
}

/// Bytes per token in [`estimate_tokens`].
pub const BYTES_PER_TOKEN: usize = 4;

/// The bytes `text` takes inside a JSON string, as serde_json writes it: a quote, a
/// backslash or `\n`, `\t`... two, another control character six (`\u001f`).
pub fn json_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..0x20 => 6,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_len_is_what_serde_json_writes() {
        for text in [
            "plain",
            "a \"quoted\" \\path",
            "tab\there\nand \u{1} \u{1f} \u{7f}",
            "日本",
        ] {
            let written = serde_json::to_string(text).unwrap();
            assert_eq!(json_len(text), written.len() - 2, "{text:?}");
        }
    }

    #[test]
    fn four_bytes_a_token_rounded_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("a"), 1);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        // Bytes, not characters: four CJK characters are nearer four tokens than one.
        assert_eq!(estimate_tokens("日本語テ"), 3);
    }
}
