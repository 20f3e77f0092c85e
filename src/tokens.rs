//! Token estimates for answer budgets (`max_tokens`, README "HTTP API").
//!
//! A budget is kept without a tokenizer: about four characters make a token in the
//! English prose and code of documentation (OpenAI's and Anthropic's rule of thumb),
//! and an estimate that never needs a model file is the same on every transport.

/// The tokens `text` is estimated to take: its characters divided by 4, rounded up.
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(CHARS_PER_TOKEN)
}

/// Characters per token in [`estimate_tokens`].
pub const CHARS_PER_TOKEN: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_characters_a_token_rounded_up() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("a"), 1);
        assert_eq!(estimate_tokens("abcd"), 1);
        assert_eq!(estimate_tokens("abcde"), 2);
        // Characters, not bytes.
        assert_eq!(estimate_tokens("日本語テ"), 1);
    }
}
