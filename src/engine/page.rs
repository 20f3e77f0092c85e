//! Which ranked sections become hits: the per-file cap, and pieces that overlap merged.
//!
//! Sections arrive best first. Each one is a new hit; or a piece whose lines overlap a
//! hit already kept from its file (a long section is cut into chunks that share
//! `chunk_overlap` lines), merged into that hit; or one more section of a file that
//! has `max_per_file` hits already, left out. A verdict depends only on the sections
//! ranked before it, so the list of hits is the same whichever page of it is asked
//! for: pages of an unchanged index neither overlap nor leave a gap, and a piece
//! merged into a hit of one page never shows up on a later one.
//!
//! Nothing here reads the index; [`super::search`] offers the sections.

use rustc_hash::FxHashMap;

/// What becomes of one ranked section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The `n`th hit of the whole list, from 0.
    Hit(usize),
    /// Merged into the `into`th hit, whose lines are now `start..=end`.
    Merged { into: usize, start: u64, end: u64 },
    /// Its file has its share of hits already.
    Capped,
}

/// The hits kept so far. Kept hits of one file never overlap: a merge widens a hit
/// up to its neighbours, not into them.
pub(super) struct Kept {
    max_per_file: usize,
    files: FxHashMap<String, File>,
    /// Per hit, in rank order.
    hits: Vec<Lines>,
}

/// A file's hits: how many, and the latest (the others are chained from it).
struct File {
    count: usize,
    latest: usize,
}

#[derive(Clone, Copy)]
struct Lines {
    start: u64,
    end: u64,
    /// The file's hit before this one, or [`NONE`]: a chain instead of a list per
    /// file, so that a new file costs no allocation besides its path.
    prev: usize,
}

const NONE: usize = usize::MAX;

impl Kept {
    pub(super) fn new(max_per_file: usize) -> Kept {
        Kept {
            max_per_file: max_per_file.max(1),
            files: FxHashMap::default(),
            hits: Vec::new(),
        }
    }

    /// The verdict on the next section in rank order: lines `start..=end` of `path`.
    /// Costs a look at each hit kept from the same file (at most `max_per_file`).
    pub(super) fn offer(&mut self, path: &str, start: u64, end: u64) -> Verdict {
        let end = end.max(start);
        let n = self.hits.len();
        let Some(file) = self.files.get_mut(path) else {
            self.files.insert(
                path.to_owned(),
                File {
                    count: 1,
                    latest: n,
                },
            );
            self.hits.push(Lines {
                start,
                end,
                prev: NONE,
            });
            return Verdict::Hit(n);
        };
        // Of the file's hits this overlaps, the best ranked: the last in the chain.
        let mut into = None;
        let mut at = file.latest;
        while at != NONE {
            let h = self.hits[at];
            if h.start <= end && start <= h.end {
                into = Some(at);
            }
            at = h.prev;
        }
        if let Some(into) = into {
            let latest = file.latest;
            let (start, end) = self.widen(latest, into, start, end);
            return Verdict::Merged { into, start, end };
        }
        if file.count >= self.max_per_file {
            return Verdict::Capped;
        }
        self.hits.push(Lines {
            start,
            end,
            prev: file.latest,
        });
        file.count += 1;
        file.latest = n;
        Verdict::Hit(n)
    }

    /// Widens hit `into` to cover `start..=end` as well, short of the file's other
    /// hits (chained from `latest`), which lie wholly before or after it. Returns its
    /// new lines.
    fn widen(&mut self, latest: usize, into: usize, start: u64, end: u64) -> (u64, u64) {
        let hit = self.hits[into];
        let (mut lo, mut hi) = (start.min(hit.start), end.max(hit.end));
        let mut at = latest;
        while at != NONE {
            let other = self.hits[at];
            if at != into {
                if other.end < hit.start {
                    lo = lo.max(other.end + 1);
                } else {
                    hi = hi.min(other.start - 1);
                }
            }
            at = other.prev;
        }
        self.hits[into].start = lo;
        self.hits[into].end = hi;
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_that_overlap_merge_into_the_best_ranked() {
        let mut k = Kept::new(3);
        assert_eq!(k.offer("a", 66, 87), Verdict::Hit(0));
        assert_eq!(k.offer("b", 60, 72), Verdict::Hit(1));
        // Overlapping, of another file: no merge.
        assert_eq!(
            k.offer("a", 60, 72),
            Verdict::Merged {
                into: 0,
                start: 60,
                end: 87
            }
        );
        // Contained: nothing changes.
        assert_eq!(
            k.offer("a", 70, 80),
            Verdict::Merged {
                into: 0,
                start: 60,
                end: 87
            }
        );
        // Touching is not overlapping.
        assert_eq!(k.offer("a", 88, 90), Verdict::Hit(2));
        assert_eq!(k.offer("a", 1, 59), Verdict::Hit(3));
    }

    #[test]
    fn merged_pieces_do_not_count_against_the_cap() {
        let mut k = Kept::new(1);
        assert_eq!(k.offer("a", 1, 10), Verdict::Hit(0));
        for (s, e) in [(8, 20), (15, 30), (1, 5)] {
            assert!(matches!(
                k.offer("a", s, e),
                Verdict::Merged { into: 0, .. }
            ));
        }
        assert_eq!(k.offer("a", 40, 50), Verdict::Capped);
        assert_eq!(k.offer("b", 40, 50), Verdict::Hit(1));
        assert_eq!(
            k.offer("a", 29, 35),
            Verdict::Merged {
                into: 0,
                start: 1,
                end: 35
            }
        );
    }

    /// A piece bridging two hits of its file widens the better one up to the other.
    #[test]
    fn hits_of_one_file_never_overlap() {
        let mut k = Kept::new(5);
        assert_eq!(k.offer("a", 36, 75), Verdict::Hit(0));
        assert_eq!(k.offer("a", 111, 150), Verdict::Hit(1));
        assert_eq!(
            k.offer("a", 71, 115),
            Verdict::Merged {
                into: 0,
                start: 36,
                end: 110
            }
        );
        assert_eq!(k.offer("a", 1, 20), Verdict::Hit(2));
        assert_eq!(
            k.offer("a", 10, 40),
            Verdict::Merged {
                into: 0,
                start: 21,
                end: 110
            }
        );
        // A range given backwards is one line, not a panic or a wrap.
        assert_eq!(k.offer("b", 9, 3), Verdict::Hit(3));
        assert_eq!(
            k.offer("b", 9, 9),
            Verdict::Merged {
                into: 3,
                start: 9,
                end: 9
            }
        );
    }
}
