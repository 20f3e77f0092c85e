//! One BERT encoder layer on plain `f32` buffers: self-attention, then the
//! feed-forward, each closed by a residual layer norm (Hugging Face's `BertLayer`).
//!
//! The matrix products call `gemm` (candle's own CPU kernel) directly, split over the
//! calling rayon pool (the model's, `embedding_threads` wide), into buffers reused for
//! the whole batch: through candle's tensors each product allocated and zeroed its
//! output on one thread, attention ran its heads one after another, and the copies
//! that split and merged the heads ran on one thread too, so a second thread added
//! half of what it should. Attention runs one task per (text, head), its scores
//! (seq × seq) in a buffer of the task's worker that stays in cache.
//!
//! Must not: know about tensors, files or tokens.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use crate::kernels::{self, Norm};

/// A dense layer: `weight` is input × output, row-major: the transpose of what
/// checkpoints store, so that `gemm` reads it in place as a column-major matrix. Given
/// as checkpoints have it, gemm copied (packed) every weight matrix at every call: ~40
/// MB for one short query, 12.5 of its 14 ms (rows 8: 1.9 ms transposed).
pub struct Dense {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub input: usize,
    pub output: usize,
}

impl Dense {
    /// `out` (rows × output) = `x` (rows × input) · weightᵀ, without the bias.
    fn apply(&self, x: &[f32], out: &mut [f32]) {
        let rows = x.len() / self.input;
        // Shapes are checked when the model loads (bert.rs): this holds for any model.
        assert!(
            x.len() == rows * self.input
                && out.len() == rows * self.output
                && self.weight.len() == self.input * self.output,
            "dense layer shapes"
        );
        // SAFETY: out, x and weight hold rows × output, rows × input and input × output
        // floats (asserted above) and every stride below stays inside them. gemm computes
        // outᵀ (output × rows) = weightᵀ · xᵀ: element (o, r) of outᵀ is out[r × output +
        // o], (o, i) of weightᵀ is weight[i × output + o], (i, r) of xᵀ is x[r × input + i].
        unsafe {
            gemm(
                self.output,
                rows,
                self.input,
                out.as_mut_ptr(),
                self.output as isize,
                1,
                false,
                self.weight.as_ptr(),
                self.output as isize,
                1,
                x.as_ptr(),
                self.input as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::Rayon(0),
            );
        }
    }
}

/// A layer norm's parameters, owned.
pub struct LayerNorm {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub eps: f32,
}

impl LayerNorm {
    fn params(&self) -> Norm<'_> {
        Norm {
            gamma: &self.gamma,
            beta: &self.beta,
            eps: self.eps,
        }
    }
}

/// The activation after the intermediate dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Hugging Face's "gelu": the exact, erf form.
    Gelu,
    /// "gelu_new": the tanh approximation.
    GeluTanh,
    Relu,
}

pub struct Layer {
    /// Query, key and value stacked: one product makes all three.
    pub qkv: Dense,
    pub attention_output: Dense,
    pub attention_norm: LayerNorm,
    pub intermediate: Dense,
    pub output: Dense,
    pub output_norm: LayerNorm,
    pub activation: Activation,
    pub heads: usize,
}

/// A batch's working buffers, sized once and reused by every layer.
pub struct Scratch {
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    intermediate: Vec<f32>,
}

impl Scratch {
    pub fn new(rows: usize, hidden: usize, intermediate: usize) -> Scratch {
        Scratch {
            qkv: vec![0.0; rows * 3 * hidden],
            context: vec![0.0; rows * hidden],
            attended: vec![0.0; rows * hidden],
            intermediate: vec![0.0; rows * intermediate],
        }
    }
}

/// A pointer that tasks share to write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: only used by `attend`, whose tasks write disjoint blocks.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer `offset` floats further on (a method, so that closures capture the
    /// whole `Shared`, not its raw pointer).
    ///
    /// # Safety
    /// As `pointer::add`: the result must stay inside the buffer.
    unsafe fn add(self, offset: usize) -> *mut f32 {
        // SAFETY: as the caller promises.
        unsafe { self.0.add(offset) }
    }
}

impl Layer {
    /// `x` (batch × seq rows of hidden values) becomes the layer's output; `mask`
    /// (batch × seq) is 0 on tokens and a large negative number on padding.
    pub fn forward(&self, x: &mut [f32], mask: &[f32], batch: usize, s: &mut Scratch) {
        let hidden = self.attention_output.output;
        let rows = x.len() / hidden;
        self.qkv.apply(x, &mut s.qkv[..rows * 3 * hidden]);
        kernels::add_bias(&mut s.qkv[..rows * 3 * hidden], &self.qkv.bias);
        let context = &mut s.context[..rows * hidden];
        self.attend(&s.qkv[..rows * 3 * hidden], mask, batch, context);
        let attended = &mut s.attended[..rows * hidden];
        self.attention_output.apply(context, attended);
        let norm = self.attention_norm.params();
        kernels::add_norm(attended, x, &self.attention_output.bias, &norm);

        let inner = &mut s.intermediate[..rows * self.intermediate.output];
        self.intermediate.apply(attended, inner);
        match self.activation {
            Activation::Gelu => kernels::bias_gelu(inner, &self.intermediate.bias),
            Activation::GeluTanh => kernels::bias_gelu_tanh(inner, &self.intermediate.bias),
            Activation::Relu => kernels::bias_relu(inner, &self.intermediate.bias),
        }
        // The layer's input is spent: its buffer takes the output.
        self.output.apply(inner, x);
        let norm = self.output_norm.params();
        kernels::add_norm(x, attended, &self.output.bias, &norm);
    }

    /// `context` (rows × hidden) = softmax(q·kᵀ / √head_dim + mask) · v, per text
    /// and head, from `qkv` (rows × 3 hidden: q, k, v side by side).
    fn attend(&self, qkv: &[f32], mask: &[f32], batch: usize, context: &mut [f32]) {
        let hidden = self.attention_output.output;
        let rows = context.len() / hidden;
        let seq = rows / batch;
        let head_dim = hidden / self.heads;
        let stride = 3 * hidden;
        // As in `Dense::apply`, checked when the model loads.
        assert!(
            rows == batch * seq && qkv.len() == rows * stride && mask.len() == rows,
            "attention shapes"
        );
        let scale = 1.0 / (head_dim as f32).sqrt();
        let out = Shared(context.as_mut_ptr());
        (0..batch * self.heads).into_par_iter().for_each_init(
            || vec![0.0f32; seq * seq],
            |scores, task| {
                let (b, head) = (task / self.heads, task % self.heads);
                let at = b * seq * stride + head * head_dim;
                let (q, k, v) = (&qkv[at..], &qkv[at + hidden..], &qkv[at + 2 * hidden..]);
                // SAFETY: q, k and v start inside qkv, and their last element read,
                // (seq - 1) × stride + head_dim - 1 further on, is inside it too (rows of
                // text b); scores holds seq × seq floats. The context block written is
                // text b's rows and this head's columns: no other task writes there.
                unsafe {
                    // scores = scale · q (seq × head_dim) · kᵀ (head_dim × seq)
                    gemm(
                        seq,
                        seq,
                        head_dim,
                        scores.as_mut_ptr(),
                        1,
                        seq as isize,
                        false,
                        q.as_ptr(),
                        1,
                        stride as isize,
                        k.as_ptr(),
                        stride as isize,
                        1,
                        0.0,
                        scale,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                    kernels::softmax_rows(scores, &mask[b * seq..(b + 1) * seq]);
                    // context block (seq × head_dim) = scores · v (seq × head_dim)
                    gemm(
                        seq,
                        head_dim,
                        seq,
                        out.add(b * seq * hidden + head * head_dim),
                        1,
                        hidden as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        seq as isize,
                        v.as_ptr(),
                        1,
                        stride as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        Parallelism::None,
                    );
                }
            },
        );
    }
}
