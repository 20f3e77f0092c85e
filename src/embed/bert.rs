//! A BERT encoder (the architecture of Hugging Face's `BertModel`): the checkpoint read
//! through candle, the embeddings on candle's tensors, then `num_hidden_layers` of
//! self-attention and feed-forward (crates/kernels), each followed by a residual
//! layer norm. Only what sentence encoders use: no pooler, no dropout (inference),
//! absolute positions.
//!
//! Written here rather than taken from candle-transformers, which compiles about a
//! hundred models to offer this one; and so that the layers run on buffers of their
//! own, with fused element-wise steps and every step on the model's threads (through
//! candle's tensors they ran at two thirds of ONNX Runtime's speed on one thread, and
//! under half on two: bench/embed.py).

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Embedding, VarBuilder};
use serde::Deserialize;

use doc_serve_kernels::{Activation, Dense, Layer, LayerNorm, Scratch};

/// What `config.json` says of the model (Hugging Face's `BertConfig`); other keys are
/// ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "Config::default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "Config::default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "Config::default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub model_type: Option<String>,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

impl Config {
    fn default_act() -> String {
        "gelu".into()
    }
    fn default_type_vocab() -> usize {
        2
    }
    fn default_eps() -> f64 {
        1e-12
    }

    /// Why this encoder cannot run the model, if it cannot.
    pub fn unsupported(&self) -> Option<String> {
        if let Some(t) = self.model_type.as_deref().filter(|t| *t != "bert") {
            return Some(format!(
                "model_type is {t:?}; only \"bert\" models are supported"
            ));
        }
        if let Some(p) = self
            .position_embedding_type
            .as_deref()
            .filter(|p| *p != "absolute")
        {
            return Some(format!("position_embedding_type {p:?} is not supported"));
        }
        if !matches!(self.hidden_act.as_str(), "gelu" | "gelu_new" | "relu") {
            return Some(format!("hidden_act {:?} is not supported", self.hidden_act));
        }
        if self.hidden_size == 0 || self.intermediate_size == 0 {
            return Some("hidden_size and intermediate_size must be positive".into());
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Some(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        None
    }
}

/// A layer norm's parameters under either of the names checkpoints use
/// (`weight`/`bias`, or the older `gamma`/`beta`).
fn norm_tensors(size: usize, vb: &VarBuilder) -> Result<(Tensor, Tensor)> {
    match vb.get(size, "weight") {
        Ok(w) => Ok((w, vb.get(size, "bias")?)),
        Err(_) => Ok((vb.get(size, "gamma")?, vb.get(size, "beta")?)),
    }
}

fn candle_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<candle_nn::LayerNorm> {
    let (w, b) = norm_tensors(size, &vb)?;
    Ok(candle_nn::LayerNorm::new(w, b, eps))
}

fn norm(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    let (w, b) = norm_tensors(size, &vb)?;
    Ok(LayerNorm {
        gamma: w.to_vec1()?,
        beta: b.to_vec1()?,
        eps: eps as f32,
    })
}

fn dense(input: usize, output: usize, vb: VarBuilder) -> Result<Dense> {
    dense_of(&[vb], input, output)
}

/// One dense layer made of the checkpoint's `parts` side by side, each input → output
/// (query, key and value as one: input → 3 × output). The weight is kept transposed, as
/// [`Dense`] takes it.
fn dense_of(parts: &[VarBuilder], input: usize, output: usize) -> Result<Dense> {
    let weights = parts
        .iter()
        .map(|vb| vb.get((output, input), "weight"))
        .collect::<Result<Vec<_>>>()?;
    let biases = parts
        .iter()
        .map(|vb| vb.get(output, "bias"))
        .collect::<Result<Vec<_>>>()?;
    Ok(Dense {
        weight: Tensor::cat(&weights, 0)?
            .t()?
            .contiguous()?
            .flatten_all()?
            .to_vec1()?,
        bias: Tensor::cat(&biases, 0)?.to_vec1()?,
        input,
        output: output * parts.len(),
    })
}

fn layer(vb: VarBuilder, c: &Config) -> Result<Layer> {
    let (h, eps) = (c.hidden_size, c.layer_norm_eps);
    let a = vb.pp("attention");
    let s = a.pp("self");
    Ok(Layer {
        qkv: dense_of(&[s.pp("query"), s.pp("key"), s.pp("value")], h, h)?,
        attention_output: dense(h, h, a.pp("output").pp("dense"))?,
        attention_norm: norm(h, eps, a.pp("output").pp("LayerNorm"))?,
        intermediate: dense(h, c.intermediate_size, vb.pp("intermediate").pp("dense"))?,
        output: dense(c.intermediate_size, h, vb.pp("output").pp("dense"))?,
        output_norm: norm(h, eps, vb.pp("output").pp("LayerNorm"))?,
        // Hugging Face's "gelu" is the exact (erf) form; "gelu_new" the tanh one.
        activation: match c.hidden_act.as_str() {
            "gelu_new" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            _ => Activation::Gelu,
        },
        heads: c.num_attention_heads,
    })
}

pub struct Bert {
    words: Embedding,
    positions: Embedding,
    types: Embedding,
    norm: candle_nn::LayerNorm,
    layers: Vec<Layer>,
    intermediate_size: usize,
}

impl Bert {
    /// Loads the weights under `vb`, with or without a `bert.` prefix (checkpoints
    /// saved from a task model have one).
    pub fn load(vb: VarBuilder, c: &Config) -> Result<Bert> {
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") {
            vb
        } else {
            vb.pp("bert")
        };
        let e = vb.pp("embeddings");
        let h = c.hidden_size;
        let layers = (0..c.num_hidden_layers)
            .map(|i| layer(vb.pp("encoder").pp("layer").pp(i), c))
            .collect::<Result<_>>()?;
        Ok(Bert {
            words: candle_nn::embedding(c.vocab_size, h, e.pp("word_embeddings"))?,
            positions: candle_nn::embedding(
                c.max_position_embeddings,
                h,
                e.pp("position_embeddings"),
            )?,
            types: candle_nn::embedding(c.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            norm: candle_norm(h, c.layer_norm_eps, e.pp("LayerNorm"))?,
            layers,
            intermediate_size: c.intermediate_size,
        })
    }

    /// The last hidden states, (batch, seq, hidden), of `ids` (batch, seq) with its
    /// attention `mask` (1 on tokens, 0 on padding).
    pub fn forward(&self, ids: &Tensor, types: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, seq) = ids.dims2()?;
        let positions = Tensor::arange(0u32, seq as u32, ids.device())?;
        let x = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.forward(&positions)?)?
            .add(&self.types.forward(types)?)?;
        let x = self.norm.forward(&x)?;
        let hidden = x.dim(2)?;
        // Padding gets a large negative score before the softmax, so no token attends
        // to it.
        let mask: Vec<f32> = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?
            .flatten_all()?
            .to_vec1()?;
        let mut x: Vec<f32> = x.flatten_all()?.to_vec1()?;
        let mut scratch = Scratch::new(b * seq, hidden, self.intermediate_size);
        for layer in &self.layers {
            layer.forward(&mut x, &mask, b, &mut scratch);
        }
        Tensor::from_vec(x, (b, seq, hidden), ids.device())
    }
}

/// Unit length along the last dimension.
pub fn normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    x.broadcast_div(&(norm + 1e-12)?)
}
