//! An HNSW graph (instant-distance) over vectors of one byte per dimension and a scale,
//! as doc-serve's vector store keeps them, so that its scores are the exact search's
//! (to rounding). Rows are numbered in the order given; the caller maps them to keys.

use instant_distance::{Builder, HnswMap, Search};

/// A vector in the graph.
#[derive(Clone)]
struct Point {
    bytes: Box<[i8]>,
    scale: f32,
}

impl instant_distance::Point for Point {
    fn distance(&self, other: &Point) -> f32 {
        1.0 - dot(&self.bytes, &other.bytes) as f32 * self.scale * other.scale
    }
}

/// The dot product of two vectors of bytes, written so that the compiler vectorises
/// it (the exact search scans every stored vector with it).
pub fn dot(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let chunks = a.len().min(b.len()) / 16 * 16;
    for (x, y) in a[..chunks]
        .chunks_exact(16)
        .zip(b[..chunks].chunks_exact(16))
    {
        for i in 0..16 {
            acc[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    let tail: i32 = a[chunks..]
        .iter()
        .zip(&b[chunks..])
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    acc.iter().sum::<i32>() + tail
}

pub struct Graph {
    map: HnswMap<Point, u32>,
}

impl Graph {
    /// The graph of `vectors` (bytes, scale), rows numbered in their order, on the
    /// calling rayon pool. `ef_construction` and `ef_search` are HNSW's `ef` while
    /// building and searching; a seed makes the same graph for the same vectors.
    pub fn build(
        vectors: impl Iterator<Item = (Box<[i8]>, f32)>,
        ef_construction: usize,
        ef_search: usize,
    ) -> Graph {
        let points: Vec<Point> = vectors
            .map(|(bytes, scale)| Point { bytes, scale })
            .collect();
        let rows = (0..points.len() as u32).collect();
        let map = Builder::default()
            .ef_construction(ef_construction)
            .ef_search(ef_search)
            .seed(0x646f_632d_7365_7276)
            .build(points, rows);
        Graph { map }
    }

    /// The rows nearest `query` (bytes and scale), best first, with their scores
    /// (cosine of the stored vectors): at most `ef_search` of them.
    pub fn search(&self, query: &[i8], scale: f32) -> Vec<(u32, f32)> {
        let point = Point {
            bytes: query.into(),
            scale,
        };
        let mut search = Search::default();
        self.map
            .search(&point, &mut search)
            .map(|item| (*item.value, 1.0 - item.distance))
            .collect()
    }
}

/// A unit vector as bytes and a scale (each byte × scale ≈ the value), as the store
/// keeps vectors.
pub fn quantize(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        1.0
    };
    let bytes = v
        .iter()
        .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (bytes, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a few hundred vectors the graph finds what comparing every vector finds.
    #[test]
    fn the_graph_finds_the_nearest() {
        let mut seed = 1u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let unit = |v: Vec<f32>| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let vectors: Vec<Vec<f32>> = (0..300)
            .map(|_| unit((0..48).map(|_| next()).collect()))
            .collect();
        let stored: Vec<(Vec<i8>, f32)> = vectors.iter().map(|v| quantize(v)).collect();
        let graph = Graph::build(
            stored
                .iter()
                .map(|(b, s)| (b.clone().into_boxed_slice(), *s)),
            100,
            64,
        );
        for q in vectors.iter().take(20) {
            let (qb, qs) = quantize(q);
            let mut exact: Vec<(u32, f32)> = stored
                .iter()
                .enumerate()
                .map(|(i, (b, s))| (i as u32, dot(&qb, b) as f32 * qs * s))
                .collect();
            exact.sort_by(|a, b| b.1.total_cmp(&a.1));
            let found = graph.search(&qb, qs);
            assert_eq!(found.len(), 64);
            assert_eq!(found[0].0, exact[0].0);
            let top: Vec<u32> = exact[..10].iter().map(|e| e.0).collect();
            let hit = found[..10].iter().filter(|f| top.contains(&f.0)).count();
            assert!(hit >= 9, "{hit} of the best 10");
        }
    }
}
