//! A BERT encoder (the architecture of Hugging Face's `BertModel`) on candle's
//! tensors: embeddings, then `num_hidden_layers` of self-attention and feed-forward,
//! each followed by a residual layer norm. Only what sentence encoders use: no pooler,
//! no dropout (inference), absolute positions.
//!
//! Written here rather than taken from candle-transformers, which compiles about a
//! hundred models to offer this one; and so that attention applies the padding mask
//! once per batch and uses candle's fused last-dimension softmax.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

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

/// A layer norm under either of the names checkpoints use (`weight`/`bias`, or the
/// older `gamma`/`beta`).
fn layer_norm(size: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    let (w, b) = match vb.get(size, "weight") {
        Ok(w) => (w, vb.get(size, "bias")?),
        Err(_) => (vb.get(size, "gamma")?, vb.get(size, "beta")?),
    };
    Ok(LayerNorm::new(w, b, eps))
}

struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    norm: LayerNorm,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn load(vb: VarBuilder, c: &Config) -> Result<Attention> {
        let h = c.hidden_size;
        let s = vb.pp("self");
        Ok(Attention {
            query: candle_nn::linear(h, h, s.pp("query"))?,
            key: candle_nn::linear(h, h, s.pp("key"))?,
            value: candle_nn::linear(h, h, s.pp("value"))?,
            output: candle_nn::linear(h, h, vb.pp("output").pp("dense"))?,
            norm: layer_norm(h, c.layer_norm_eps, vb.pp("output").pp("LayerNorm"))?,
            heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
        })
    }

    /// `x` is (batch, seq, hidden); `bias` (batch, 1, 1, seq) is 0 on tokens and a
    /// large negative number on padding.
    fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (b, seq, hidden) = x.dims3()?;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((b, seq, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b, seq, hidden))?;
        self.norm.forward(&(self.output.forward(&context)? + x)?)
    }
}

struct Layer {
    attention: Attention,
    intermediate: Linear,
    output: Linear,
    norm: LayerNorm,
    act: String,
}

impl Layer {
    fn load(vb: VarBuilder, c: &Config) -> Result<Layer> {
        Ok(Layer {
            attention: Attention::load(vb.pp("attention"), c)?,
            intermediate: candle_nn::linear(
                c.hidden_size,
                c.intermediate_size,
                vb.pp("intermediate").pp("dense"),
            )?,
            output: candle_nn::linear(
                c.intermediate_size,
                c.hidden_size,
                vb.pp("output").pp("dense"),
            )?,
            norm: layer_norm(
                c.hidden_size,
                c.layer_norm_eps,
                vb.pp("output").pp("LayerNorm"),
            )?,
            act: c.hidden_act.clone(),
        })
    }

    fn forward(&self, x: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let x = self.attention.forward(x, bias)?;
        let h = self.intermediate.forward(&x)?;
        // Hugging Face's "gelu" is the exact (erf) form; "gelu_new" the tanh one.
        let h = match self.act.as_str() {
            "gelu_new" => h.gelu()?,
            "relu" => h.relu()?,
            _ => h.gelu_erf()?,
        };
        self.norm.forward(&(self.output.forward(&h)? + x)?)
    }
}

pub struct Bert {
    words: Embedding,
    positions: Embedding,
    types: Embedding,
    norm: LayerNorm,
    layers: Vec<Layer>,
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
            .map(|i| Layer::load(vb.pp("encoder").pp("layer").pp(i), c))
            .collect::<Result<_>>()?;
        Ok(Bert {
            words: candle_nn::embedding(c.vocab_size, h, e.pp("word_embeddings"))?,
            positions: candle_nn::embedding(
                c.max_position_embeddings,
                h,
                e.pp("position_embeddings"),
            )?,
            types: candle_nn::embedding(c.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            norm: layer_norm(h, c.layer_norm_eps, e.pp("LayerNorm"))?,
            layers,
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
        let mut x = self.norm.forward(&x)?;
        // Padding gets a large negative score before the softmax, so no token attends
        // to it.
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((b, 1, 1, seq))?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias)?;
        }
        Ok(x)
    }
}

/// Unit length along the last dimension.
pub fn normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    x.broadcast_div(&(norm + 1e-12)?)
}
