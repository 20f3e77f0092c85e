//! Answers already computed for the reader's current generation.
//!
//! Assistants and scripts ask the same question again and again (several assistants
//! on one project, a retried tool call, a CLI run in a loop). Until the reader moves
//! to a newer commit (ours or another process's), the same request gets the same
//! answer, so it is kept; a new generation forgets everything. Bounded: the last
//! [`CAPACITY`] answers, each of at most 50 hits (see `search`).

use std::collections::VecDeque;
use std::sync::Mutex;

use super::search::{Request, Response};

/// Answers kept per generation.
pub const CAPACITY: usize = 64;

#[derive(Default)]
pub struct Recent(Mutex<Memo>);

#[derive(Default)]
struct Memo {
    generation: u64,
    counts: Option<(u64, u64)>,
    answers: VecDeque<(Request, Response)>,
}

impl Recent {
    /// The memo for `generation`, emptied first if it held an older one.
    fn with<T>(&self, generation: u64, f: impl FnOnce(&mut Memo) -> T) -> T {
        // A poisoned lock only means a panic elsewhere mid-update: start afresh.
        let mut memo = self.0.lock().unwrap_or_else(|e| {
            let mut m = e.into_inner();
            *m = Memo::default();
            m
        });
        if memo.generation != generation {
            *memo = Memo {
                generation,
                ..Memo::default()
            };
        }
        f(&mut memo)
    }

    pub fn answer(&self, generation: u64, req: &Request) -> Option<Response> {
        self.with(generation, |m| {
            m.answers
                .iter()
                .find(|(r, _)| r == req)
                .map(|(_, a)| a.clone())
        })
    }

    pub fn keep(&self, generation: u64, req: &Request, answer: &Response) {
        self.with(generation, |m| {
            if m.answers.len() == CAPACITY {
                m.answers.pop_front();
            }
            m.answers.push_back((req.clone(), answer.clone()));
        })
    }

    /// (files, chunks), computed once per generation.
    pub fn counts<E>(
        &self,
        generation: u64,
        compute: impl FnOnce() -> Result<(u64, u64), E>,
    ) -> Result<(u64, u64), E> {
        if let Some(c) = self.with(generation, |m| m.counts) {
            return Ok(c);
        }
        let c = compute()?;
        self.with(generation, |m| m.counts = Some(c));
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(q: &str) -> Request {
        Request {
            q: q.into(),
            limit: 10,
            offset: 0,
            path_prefix: None,
            max_per_file: 3,
            max_tokens: None,
            mode: Default::default(),
            explain: false,
        }
    }

    fn resp(q: &str) -> Response {
        Response {
            query: q.into(),
            mode: Default::default(),
            hits: std::sync::Arc::new([]),
            total_matches: 1,
            offset: 0,
            next_offset: None,
            truncated: false,
            took_ms: 1.0,
        }
    }

    #[test]
    fn answers_last_only_for_their_generation() {
        let r = Recent::default();
        r.keep(1, &req("a"), &resp("a"));
        assert_eq!(r.answer(1, &req("a")), Some(resp("a")));
        assert_eq!(r.answer(1, &req("b")), None);
        let mut other = req("a");
        other.limit = 5;
        assert_eq!(r.answer(1, &other), None);
        // Another page of the same question is another answer.
        let mut page = req("a");
        page.offset = 10;
        assert_eq!(r.answer(1, &page), None);
        assert_eq!(r.answer(2, &req("a")), None);
        // Generation 2 replaced generation 1.
        assert_eq!(r.answer(1, &req("a")), None);
    }

    #[test]
    fn bounded() {
        let r = Recent::default();
        for i in 0..=CAPACITY {
            r.keep(1, &req(&i.to_string()), &resp(""));
        }
        assert_eq!(r.answer(1, &req("0")), None);
        assert!(r.answer(1, &req("1")).is_some());
        assert!(r.answer(1, &req(&CAPACITY.to_string())).is_some());
    }

    #[test]
    fn counts_once_per_generation() {
        let r = Recent::default();
        let mut calls = 0;
        for _ in 0..3 {
            let c = r.counts(7, || {
                calls += 1;
                Ok::<_, ()>((2, 5))
            });
            assert_eq!(c, Ok((2, 5)));
        }
        assert_eq!(calls, 1);
        assert_eq!(r.counts(8, || Ok::<_, ()>((3, 6))), Ok((3, 6)));
    }
}
