//! Sentence embeddings, in process: a BERT-family encoder (see [`bert`]) run on candle's
//! CPU tensors, its tokenizer from `tokenizer.json`, and the vectors kept beside the
//! index (see [`store`]).
//!
//! A model is a directory holding `config.json`, `tokenizer.json` and
//! `model.safetensors` (as Hugging Face and sentence-transformers save them), or the
//! name of a known model installed by `doc-serve model fetch` (see [`known`]). Vectors
//! are pooled as the model's `1_Pooling/config.json` says (mean over tokens, or the
//! first token) and scaled to unit length, so a dot product is their cosine.

pub mod ann;
pub mod bert;
pub mod fetch;
pub mod known;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::{Tokenizer, TruncationParams};

/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Tokens a batch holds at most (padding included): sixteen sections of 256 tokens.
/// The attention scores take batch × heads × seq² floats, 50 MB at this size;
/// larger batches are not faster on a CPU.
const BATCH_TOKENS: usize = 16 * 256;
/// Texts a batch holds at most, however short.
const BATCH_TEXTS: usize = 64;
/// Bytes of a text read per token the model takes: the rest of a long section is cut
/// before tokenizing, which would otherwise read all of it to keep the first 256 tokens.
const BYTES_PER_MODEL_TOKEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model cannot be used: files missing, partial or corrupt.
    #[error("cannot load the embedding model {}: {what}", path.display())]
    Model { path: PathBuf, what: String },
    #[error("embedding failed: {0}")]
    Run(String),
}

impl From<candle_core::Error> for EmbedError {
    fn from(e: candle_core::Error) -> EmbedError {
        EmbedError::Run(e.to_string())
    }
}

/// How token vectors become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    /// The first token's (`[CLS]`).
    Cls,
}

pub struct Model {
    name: String,
    dir: PathBuf,
    fingerprint: String,
    tokenizer: Tokenizer,
    bert: bert::Bert,
    pooling: Pooling,
    dim: usize,
    max_tokens: usize,
    pad_id: u32,
    /// Where background embedding runs, `embedding_threads` wide.
    pool: rayon::ThreadPool,
    /// Where queries are embedded: one thread (see [`Model::embed_query`]).
    query_pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

/// Models loaded in this process, by directory and thread count: a shared daemon's
/// projects that name the same model share one copy.
static LOADED: Mutex<Vec<(PathBuf, usize, Weak<Model>)>> = Mutex::new(Vec::new());

impl Model {
    /// The model `setting` names (a directory, or a known model's name installed in
    /// `cache`), loaded once per process.
    pub fn shared(setting: &str, cache: &Path, threads: usize) -> Result<Arc<Model>, EmbedError> {
        let dir = known::resolve(setting, cache);
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        loaded.retain(|(_, _, m)| m.strong_count() > 0);
        if let Some(model) = loaded
            .iter()
            .find(|(d, t, _)| *d == dir && *t == threads)
            .and_then(|(_, _, m)| m.upgrade())
        {
            return Ok(model);
        }
        let model = Arc::new(Model::load(&dir, threads)?);
        loaded.push((dir, threads, Arc::downgrade(&model)));
        Ok(model)
    }

    /// Loads the model in `dir`, to run on `threads` threads.
    pub fn load(dir: &Path, threads: usize) -> Result<Model, EmbedError> {
        let bad = |what: String| EmbedError::Model {
            path: dir.to_path_buf(),
            what,
        };
        if !dir.is_dir() {
            return Err(bad(format!(
                "no such directory; it must hold {}, or name a model installed with \
                 `doc-serve model fetch` (see `doc-serve model list`)",
                MODEL_FILES.join(", ")
            )));
        }
        if let Some(missing) = MODEL_FILES.iter().find(|f| !dir.join(f).is_file()) {
            return Err(bad(format!(
                "{missing} is missing; a model directory holds {}",
                MODEL_FILES.join(", ")
            )));
        }
        let read = |file: &str| {
            std::fs::read(dir.join(file)).map_err(|e| bad(format!("cannot read {file}: {e}")))
        };
        let config_bytes = read("config.json")?;
        let config: bert::Config = serde_json::from_slice(&config_bytes)
            .map_err(|e| bad(format!("config.json is not a BERT configuration: {e}")))?;
        if let Some(why) = config.unsupported() {
            return Err(bad(format!("config.json: {why}")));
        }
        let mut tokenizer = Tokenizer::from_bytes(read("tokenizer.json")?)
            .map_err(|e| bad(format!("tokenizer.json cannot be read as a tokenizer: {e}")))?;
        let max_tokens = sentence_max_tokens(dir)
            .or_else(|| known::max_tokens_by_name(dir))
            .unwrap_or(512)
            .min(config.max_position_embeddings)
            .max(2);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| bad(format!("tokenizer.json: {e}")))?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        let weights = dir.join("model.safetensors");
        // Read, not mapped: a mapped file that shrinks under us (a download
        // replacing it) would be a SIGBUS, not an error.
        let tensors = candle_core::safetensors::load(&weights, &Device::Cpu)
            .map_err(|e| bad(format!("model.safetensors cannot be read: {e}")))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let bert = bert::Bert::load(vb, &config)
            .map_err(|e| bad(format!("model.safetensors does not fit config.json: {e}")))?;
        let pooling = pooling_of(dir).unwrap_or_else(|| known::pooling_by_name(dir));
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("embed-{i}"))
            .build()
            .map_err(|e| EmbedError::Run(format!("cannot start embedding threads: {e}")))?;
        let query_pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "embed-query".into())
            .build()
            .map_err(|e| EmbedError::Run(format!("cannot start embedding threads: {e}")))?;
        let fingerprint = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(&config_bytes);
            h.update(format!("{pooling:?} {max_tokens}"));
            if let Ok(m) = std::fs::metadata(&weights) {
                h.update(m.len().to_le_bytes());
            }
            h.finalize()[..6]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| dir.display().to_string());
        enable_large_heap();
        Ok(Model {
            name,
            dir: dir.to_path_buf(),
            fingerprint,
            tokenizer,
            bert,
            pooling,
            dim: config.hidden_size,
            max_tokens,
            pad_id,
            pool,
            query_pool,
        })
    }

    /// The model's name: its directory's.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Dimensions of a vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Tokens of a text the model reads; the rest is not embedded.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Distinguishes this model's vectors from any other's (configuration, pooling,
    /// length, weights' size).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Unit vectors of `texts`, in order, on the model's threads (background work).
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.pool.install(|| self.embed_here(texts))
    }

    /// Runs `work` on the model's threads (`embedding_threads` of them): background
    /// work that should not take every core, such as building the approximate index.
    pub fn install<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        self.pool.install(work)
    }

    /// The unit vector of one short text (a query), on a thread of its own: it never
    /// waits behind a background batch. One thread, because a query's matrices are a
    /// few rows: split over two threads, each of a layer's steps waited for the other
    /// thread to be scheduled, and on a busy machine a query took 20-30 ms instead of
    /// 5-7 ms.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut v = self.query_pool.install(|| self.embed_here(&[text]))?;
        v.pop()
            .ok_or_else(|| EmbedError::Run("no vector for the query".into()))
    }

    fn embed_here(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let cut: Vec<&str> = texts
            .iter()
            .map(|t| prefix(t, self.max_tokens * BYTES_PER_MODEL_TOKEN))
            .collect();
        let encodings = self
            .tokenizer
            .encode_batch(cut, true)
            .map_err(|e| EmbedError::Run(format!("tokenizing: {e}")))?;
        // Longest first, so that each batch pads little.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].len()));
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let mut start = 0;
        while start < order.len() {
            let longest = encodings[order[start]].len().max(1);
            let n = (BATCH_TOKENS / longest).clamp(1, BATCH_TEXTS);
            let batch = &order[start..(start + n).min(order.len())];
            let vectors = self.run_batch(batch.iter().map(|&i| &encodings[i]), longest)?;
            for (&i, v) in batch.iter().zip(vectors) {
                out[i] = v;
            }
            start += batch.len();
        }
        Ok(out)
    }

    fn run_batch<'a>(
        &self,
        batch: impl ExactSizeIterator<Item = &'a tokenizers::Encoding>,
        seq: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let b = batch.len();
        let mut ids = vec![self.pad_id; b * seq];
        let mut types = vec![0u32; b * seq];
        let mut mask = vec![0u32; b * seq];
        for (row, e) in batch.enumerate() {
            let at = row * seq;
            let n = e.len().min(seq);
            ids[at..at + n].copy_from_slice(&e.get_ids()[..n]);
            types[at..at + n].copy_from_slice(&e.get_type_ids()[..n]);
            mask[at..at + n].copy_from_slice(&e.get_attention_mask()[..n]);
        }
        let dev = &Device::Cpu;
        let ids = Tensor::from_vec(ids, (b, seq), dev)?;
        let types = Tensor::from_vec(types, (b, seq), dev)?;
        let mask = Tensor::from_vec(mask, (b, seq), dev)?;
        let hidden = self.bert.forward(&ids, &types, &mask)?;
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let sum = hidden.broadcast_mul(&m)?.sum(1)?;
                sum.broadcast_div(&m.sum(1)?.clamp(1.0, f64::MAX)?)?
            }
        };
        Ok(bert::normalize(&pooled)?.to_vec2::<f32>()?)
    }
}

/// At most `bytes` of the start of `text`, on a character boundary.
fn prefix(text: &str, bytes: usize) -> &str {
    let mut at = bytes.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    &text[..at]
}

/// `max_seq_length` from sentence-transformers' `sentence_bert_config.json`.
fn sentence_max_tokens(dir: &Path) -> Option<usize> {
    let text = std::fs::read(dir.join("sentence_bert_config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    v["max_seq_length"].as_u64().map(|n| n as usize)
}

/// The pooling sentence-transformers' `1_Pooling/config.json` names.
fn pooling_of(dir: &Path) -> Option<Pooling> {
    let text = std::fs::read(dir.join("1_Pooling").join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    if v["pooling_mode_cls_token"].as_bool() == Some(true) {
        Some(Pooling::Cls)
    } else if v["pooling_mode_mean_tokens"].as_bool() == Some(true) {
        Some(Pooling::Mean)
    } else {
        None
    }
}

/// glibc hands every large allocation back to the kernel when it is freed: a
/// transformer's tensors then cost a mmap, page faults and a munmap each, and embedding
/// ran at a third of its speed with most of the time in the kernel. Big blocks come
/// from the heap instead (the resident trims it once a job is done).
fn enable_large_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it takes the allocator's lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Makes candle run its element-wise operations on the calling thread (set before any
/// thread starts, from `main`): its own pool would otherwise take every core for them,
/// whatever `embedding_threads` says. The encoder's layers (crates/kernels) run their
/// matrix products and element-wise steps on the rayon pool of the caller: the
/// model's, `embedding_threads` wide, for background work.
pub fn init_process() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: called from `main` before any other thread exists.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model tests/embed/setup installs; `None` (the test says why) without it,
    /// which CI never is.
    fn test_model() -> Option<Model> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/models/all-MiniLM-L6-v2");
        if !dir.join("model.safetensors").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "the test model is required in CI: run tests/embed/setup"
            );
            eprintln!("SKIP: no test model (run tests/embed/setup)");
            return None;
        }
        Some(Model::load(&dir, 2).unwrap())
    }

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn vectors_match_sentence_transformers() {
        let Some(m) = test_model() else { return };
        let texts = [
            "The cat sits outside",
            "A man is playing guitar",
            "Why does my service keep coming back after I kill it?",
            "Restart policies control whether a container is restarted when it exits.",
            "",
            "日本語のセクションです。",
        ];
        let v = m.embed(&texts).unwrap();
        assert_eq!(v.len(), texts.len());
        assert!(v.iter().all(|v| v.len() == 384));
        // Figures from sentence-transformers on the same model, normalised.
        assert!(
            (cos(&v[0], &v[1]) - 0.036330).abs() < 1e-4,
            "{}",
            cos(&v[0], &v[1])
        );
        assert!(
            (cos(&v[2], &v[3]) - 0.307649).abs() < 1e-4,
            "{}",
            cos(&v[2], &v[3])
        );
        // One at a time (no padding) gives the same vectors as in a batch.
        let one = m.embed_query(texts[3]).unwrap();
        assert!(cos(&one, &v[3]) > 0.99999);
        // A huge text is cut before tokenizing, not read whole.
        let huge = "word ".repeat(2_000_000);
        assert_eq!(m.embed(&[huge.as_str()]).unwrap()[0].len(), 384);
    }
}
