//! The encoder's element-wise arithmetic on plain `f32` slices, fused: bias + GELU,
//! padding mask + softmax, and bias + residual + layer norm, each one pass over its
//! rows instead of candle's three or four, split over the calling rayon pool (the
//! model's, `embedding_threads` wide).
//!
//! candle computes GELU with a scalar `erf` and softmax with a scalar `exp`, on one
//! thread (doc-serve sets `CANDLE_NUM_THREADS=1`): a third of the encoder's time went there. Here `erf`
//! and `exp` are polynomials a compiler vectorises (on AVX2 when the CPU has it,
//! chosen at run time), accurate to a few units in the last place of an `f32`, far
//! below what changes a unit vector in its fourth decimal.
//!
//! Must not: know about tensors or allocate per row.

use rayon::prelude::*;

/// Rows of work per rayon task, at least: fewer, larger tasks cost less to hand out.
const MIN_ELEMS_PER_TASK: usize = 1 << 14;

/// Sums and maxima are kept in this many lanes and added up at the end: a compiler
/// may not reorder a floating-point sum by itself, and a single running sum would not
/// vectorise.
const LANES: usize = 16;

fn min_rows(row: usize) -> usize {
    (MIN_ELEMS_PER_TASK / row.max(1)).max(1)
}

/// `x` in rows of `n` values for rayon (none when `n` is 0, which `par_chunks_mut`
/// refuses).
fn par_rows(x: &mut [f32], n: usize) -> rayon::slice::ChunksMut<'_, f32> {
    let x = if n == 0 { &mut [][..] } else { x };
    x.par_chunks_mut(n.max(1))
}

/// Defines each `fn` so that its body runs compiled for AVX2 and FMA where the CPU has
/// them (checked at run time), and as baseline code elsewhere: the body is inlined into
/// both, so that its loops are vectorised for each.
macro_rules! multiversion {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) $body:block)*) => {$(
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` is compiled for (checked
                    // just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    )*};
}

/// `erf`, as a rational function of `x` (Eigen's `generic_fast_erf_float`): within
/// 5e-7 of the true value for every `f32`.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    x * p / q
}

/// `exp` for `x <= 0` (Cephes' `expf`): a relative error of a few units in the last
/// place; below -87 it gives about 1e-38 instead of 0.
#[inline(always)]
fn exp_neg(x: f32) -> f32 {
    // Round to nearest by adding and taking away 1.5 * 2^23, which vectorises on any
    // x86-64 (`round` needs SSE4.1).
    const ROUND: f32 = 12_582_912.0;
    let x = x.max(-87.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4 * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n, n in -126..=0, as exponent bits: t's last mantissa bits hold n, as the
    // ulp of t is 1 (an integer conversion would not vectorise as well).
    let n_bits = t.to_bits().wrapping_sub(ROUND.to_bits());
    e * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// `x = gelu(x + bias)` (the exact, erf form) on every row of `bias.len()` values.
pub fn bias_gelu(x: &mut [f32], bias: &[f32]) {
    let n = bias.len();
    par_rows(x, n)
        .with_min_len(min_rows(n))
        .for_each(|row| bias_gelu_row(row, bias));
}

multiversion! {
    fn bias_gelu_row(row: &mut [f32], bias: &[f32]) {
        for (v, b) in row.iter_mut().zip(bias) {
            let h = *v + b;
            *v = 0.5 * h * (1.0 + erf(h * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

/// `x = gelu(x + bias)` in its tanh approximation ("gelu_new").
pub fn bias_gelu_tanh(x: &mut [f32], bias: &[f32]) {
    let n = bias.len();
    par_rows(x, n)
        .with_min_len(min_rows(n))
        .for_each(|row| bias_gelu_tanh_row(row, bias));
}

multiversion! {
    fn bias_gelu_tanh_row(row: &mut [f32], bias: &[f32]) {
        // sqrt(2 / pi)
        const C: f32 = 0.797_884_6;
        for (v, b) in row.iter_mut().zip(bias) {
            let h = *v + b;
            let y = C * (h + 0.044_715 * h * h * h);
            // tanh(y) = sign(y) (1 - e) / (1 + e), e = exp(-2 |y|)
            let e = exp_neg(-2.0 * y.abs());
            let t = (1.0 - e) / (1.0 + e);
            *v = 0.5 * h * (1.0 + if y < 0.0 { -t } else { t });
        }
    }
}

/// `x = max(x + bias, 0)` on every row of `bias.len()` values.
pub fn bias_relu(x: &mut [f32], bias: &[f32]) {
    let n = bias.len();
    par_rows(x, n)
        .with_min_len(min_rows(n))
        .for_each(|row| bias_relu_row(row, bias));
}

multiversion! {
    fn bias_relu_row(row: &mut [f32], bias: &[f32]) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = (*v + b).max(0.0);
        }
    }
}

/// `x += bias` on every row of `bias.len()` values.
pub fn add_bias(x: &mut [f32], bias: &[f32]) {
    let n = bias.len();
    par_rows(x, n)
        .with_min_len(min_rows(n))
        .for_each(|row| add_bias_row(row, bias));
}

multiversion! {
    fn add_bias_row(row: &mut [f32], bias: &[f32]) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// Attention probabilities, in place: each row of `scores` (`mask.len()` values)
/// becomes `softmax(row + mask)`, `mask` being 0 on tokens and a large negative number
/// on padding. On the calling thread: attention runs one task per text and head.
pub fn softmax_rows(scores: &mut [f32], mask: &[f32]) {
    for row in scores.chunks_mut(mask.len().max(1)) {
        softmax_row(row, mask);
    }
}

multiversion! {
    fn softmax_row(row: &mut [f32], mask: &[f32]) {
        let mut top = [f32::NEG_INFINITY; LANES];
        for (vs, ms) in row.chunks_mut(LANES).zip(mask.chunks(LANES)) {
            for ((v, m), t) in vs.iter_mut().zip(ms).zip(&mut top) {
                *v += m;
                *t = if *v > *t { *v } else { *t };
            }
        }
        let max = top.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        let mut sums = [0.0; LANES];
        for vs in row.chunks_mut(LANES) {
            for (v, s) in vs.iter_mut().zip(&mut sums) {
                *v = exp_neg(*v - max);
                *s += *v;
            }
        }
        let inv = 1.0 / sums.iter().sum::<f32>();
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}

/// A layer norm's parameters.
pub struct Norm<'a> {
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub eps: f32,
}

/// `x = layer_norm(x + bias + residual)` on every row of `bias.len()` values.
pub fn add_norm(x: &mut [f32], residual: &[f32], bias: &[f32], norm: &Norm) {
    let n = bias.len();
    par_rows(x, n)
        .zip(residual.par_chunks(n.max(1)))
        .with_min_len(min_rows(n))
        .for_each(|(row, res)| add_norm_row(row, res, bias, norm.gamma, norm.beta, norm.eps));
}

multiversion! {
    fn add_norm_row(row: &mut [f32], res: &[f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
        let mut sums = [0.0; LANES];
        for ((vs, rs), bs) in row.chunks_mut(LANES).zip(res.chunks(LANES)).zip(bias.chunks(LANES)) {
            for (((v, r), b), s) in vs.iter_mut().zip(rs).zip(bs).zip(&mut sums) {
                *v += r + b;
                *s += *v;
            }
        }
        let mean = sums.iter().sum::<f32>() / row.len() as f32;
        let mut squares = [0.0; LANES];
        for vs in row.chunks_mut(LANES) {
            for (v, s) in vs.iter_mut().zip(&mut squares) {
                *v -= mean;
                *s += *v * *v;
            }
        }
        let var = squares.iter().sum::<f32>() / row.len() as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = *v * inv * g + b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series in f64 (|x| <= 3), or 1 - its asymptotic tail.
    fn erf_ref(x: f64) -> f64 {
        if x.abs() > 3.0 {
            let t = 1.0 / (x * x);
            let tail = (-x * x).exp() / (x.abs() * std::f64::consts::PI.sqrt())
                * (1.0 - 0.5 * t + 0.75 * t * t - 1.875 * t * t * t);
            return x.signum() * (1.0 - tail);
        }
        let (mut term, mut sum, mut k) = (x, x, 0.0);
        while term.abs() > 1e-17 {
            k += 1.0;
            term *= -x * x / k;
            sum += term / (2.0 * k + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_and_exp_are_accurate() {
        for i in -8000..=8000 {
            let x = i as f32 / 1000.0;
            let e = (f64::from(erf(x)) - erf_ref(f64::from(x))).abs();
            assert!(e < 1e-6, "erf({x}) off by {e}");
        }
        for i in 0..=90_000 {
            let x = -(i as f32) / 1000.0;
            let want = f64::from(x).exp();
            let e = (f64::from(exp_neg(x)) - want).abs() / want.max(1e-30);
            assert!(x < -87.0 || e < 1e-6, "exp({x}) off by {e}");
        }
        assert!(exp_neg(-1e9) < 1e-37);
    }

    #[test]
    fn fused_rows_match_the_plain_arithmetic() {
        let row: Vec<f32> = (0..384)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let bias: Vec<f32> = (0..384).map(|i| (i % 13) as f32 / 10.0 - 0.6).collect();
        let mut x = [row.clone(), row.clone()].concat();
        bias_gelu(&mut x, &bias);
        for (i, v) in x.iter().enumerate() {
            let h = f64::from(row[i % 384] + bias[i % 384]);
            let want = 0.5 * h * (1.0 + erf_ref(h / 2f64.sqrt()));
            assert!((f64::from(*v) - want).abs() < 1e-5, "gelu at {i}");
        }

        // Rows of 4, the last two padded.
        let mut s: Vec<f32> = (0..8).map(|i| i as f32 / 3.0).collect();
        let mask = [0.0, 0.0, -1e9, -1e9];
        softmax_rows(&mut s, &mask);
        for (r, row) in s.chunks(4).enumerate() {
            let z: Vec<f64> = (0..4)
                .map(|j| (r * 4 + j) as f64 / 3.0 + f64::from(mask[j]))
                .collect();
            let top = z.iter().cloned().fold(f64::MIN, f64::max);
            let total: f64 = z.iter().map(|v| (v - top).exp()).sum();
            for j in 0..4 {
                let want = (z[j] - top).exp() / total;
                assert!((f64::from(row[j]) - want).abs() < 1e-6, "softmax {r},{j}");
            }
        }

        let mut x = [row.clone(), row.clone()].concat();
        bias_gelu_tanh(&mut x, &bias);
        for (i, v) in x.iter().enumerate() {
            let h = f64::from(row[i % 384] + bias[i % 384]);
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let want = 0.5 * h * (1.0 + (c * (h + 0.044715 * h * h * h)).tanh());
            assert!((f64::from(*v) - want).abs() < 1e-5, "gelu_new at {i}");
        }

        let mut x = row.clone();
        let res: Vec<f32> = row.iter().map(|v| v * 0.5).collect();
        let gamma: Vec<f32> = (0..384).map(|i| 1.0 + (i % 5) as f32 / 10.0).collect();
        let norm = Norm {
            gamma: &gamma,
            beta: &bias,
            eps: 1e-12,
        };
        add_norm(&mut x, &res, &bias, &norm);
        let y: Vec<f64> = (0..384)
            .map(|i| f64::from(row[i]) * 1.5 + f64::from(bias[i]))
            .collect();
        let mean = y.iter().sum::<f64>() / 384.0;
        let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 384.0;
        for i in 0..384 {
            let want = (y[i] - mean) / var.sqrt() * f64::from(gamma[i]) + f64::from(bias[i]);
            assert!((f64::from(x[i]) - want).abs() < 1e-5, "layer norm at {i}");
        }
    }
}
