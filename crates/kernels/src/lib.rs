//! doc-serve's number crunching: the BERT encoder's layers on plain `f32` buffers
//! (matrix products on `gemm`, element-wise steps fused into one pass each, on the
//! calling rayon pool), and the graph of the approximate vector index.
//!
//! A crate of its own so that it is optimised in every build profile (see the
//! workspace's Cargo.toml): its loops run a hundred times slower unoptimised, and the
//! test suite runs a debug binary. doc-serve's `embed` module loads the weights, drives
//! the layers and keeps the vectors; nothing here knows about files, tokens or tensors.

pub mod ann;
mod kernels;
mod layer;

pub use layer::{Activation, Dense, Layer, LayerNorm, Scratch};
