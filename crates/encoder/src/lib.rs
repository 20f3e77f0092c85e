//! doc-serve's BERT encoder layers on plain `f32` buffers: matrix products on `gemm`,
//! element-wise steps fused into one pass each, on the calling rayon pool.
//!
//! A crate of its own so that it is optimised in every build profile (see the
//! workspace's Cargo.toml): its loops run a hundred times slower unoptimised, and the
//! test suite embeds through a debug binary. doc-serve's `embed::bert` loads the
//! weights and drives these layers; nothing here knows about files, tokens or tensors.

mod kernels;
mod layer;

pub use layer::{Activation, Dense, Layer, LayerNorm, Scratch};
