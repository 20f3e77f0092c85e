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

#[cfg(test)]
mod tests {
    use super::*;

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
