#!/usr/bin/env python3
"""ONNX Runtime's side of bench/embed.py, driven like `doc-serve model embed`.

Reads texts one per line on stdin (UTF-8, split at "\n" only, a "\r" before it dropped), prints one JSON array (the
unit vector) per line on stdout, and a summary on stderr as JSON ({"texts", "seconds",
"texts_per_second"}: seconds spent embedding, from a chunk's first text cut to its last
vector pooled, summed; neither loading nor reading nor writing is counted).

It does the work `doc-serve model embed` does (src/cli/model.rs, src/embed/mod.rs),
step for step: texts taken in chunks of CHUNK, in input order; in each, every text cut to
max_tokens * 16 bytes on a character boundary, tokenized by the same tokenizer.json
truncated at max_tokens (no padding), sorted longest first (a stable sort, as Rust's
sort_by_key), batched at most BATCH_TOKENS padded tokens and BATCH_TEXTS texts, padded
with [PAD], mean pooling over the attention mask (or [CLS], as the model's
1_Pooling/config.json says), then unit length. The session runs intra_op_num_threads =
--threads, inter_op 1; the tokenizer's own thread pool is held to the same count through
RAYON_NUM_THREADS, which the caller sets.

Usage: ort_embed.py --model DIR --onnx FILE [--threads N]   (the bench venv's python)
"""
import argparse, json, os, sys, time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

CHUNK = 1024  # as src/cli/model.rs
BATCH_TOKENS = 16 * 256  # as src/embed/mod.rs
BATCH_TEXTS = 64
BYTES_PER_MODEL_TOKEN = 16


def max_tokens(model_dir):
    try:
        n = json.load(open(os.path.join(model_dir, "sentence_bert_config.json")))["max_seq_length"]
    except (OSError, ValueError, KeyError):
        n = 512
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    return max(2, min(n, cfg["max_position_embeddings"]))


def cls_pooling(model_dir):
    try:
        p = json.load(open(os.path.join(model_dir, "1_Pooling", "config.json")))
    except (OSError, ValueError):
        return False
    return bool(p.get("pooling_mode_cls_token"))


def prefix(text, nbytes):
    """At most nbytes of the UTF-8 of text, on a character boundary."""
    b = text.encode()
    if len(b) <= nbytes:
        return text
    return b[:nbytes].decode(errors="ignore")


def embed_chunk(session, tok, texts, n_max, pad_id, cls):
    """Unit vectors of texts, in order, as src/embed/mod.rs makes them."""
    enc = tok.encode_batch([prefix(t, n_max * BYTES_PER_MODEL_TOKEN) for t in texts])
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i].ids))
    out = [None] * len(texts)
    start = 0
    while start < len(order):
        longest = max(1, len(enc[order[start]].ids))
        n = max(1, min(BATCH_TOKENS // longest, BATCH_TEXTS))
        batch = order[start:start + n]
        ids = np.full((len(batch), longest), pad_id, np.int64)
        types = np.zeros((len(batch), longest), np.int64)
        mask = np.zeros((len(batch), longest), np.int64)
        for row, i in enumerate(batch):
            e = enc[i]
            k = len(e.ids)
            ids[row, :k], types[row, :k], mask[row, :k] = e.ids, e.type_ids, e.attention_mask
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
        if cls:
            pooled = hidden[:, 0, :]
        else:
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1.0)
        pooled = pooled / (np.linalg.norm(pooled, axis=1, keepdims=True) + 1e-12)
        for row, i in enumerate(batch):
            out[i] = pooled[row]
        start += len(batch)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="the model directory (tokenizer.json, config.json)")
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()

    n_max = max_tokens(a.model)
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(n_max)
    pad_id = tok.token_to_id("[PAD]") or 0
    cls = cls_pooling(a.model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(a.onnx, so, providers=["CPUExecutionProvider"])
    # Chunk by chunk, as doc-serve reads, embeds and writes them.
    stdin, w = sys.stdin.buffer, sys.stdout.write
    texts, secs = 0, 0.0
    while True:
        chunk = []
        while len(chunk) < CHUNK:
            line = stdin.readline()
            if not line:
                break
            line = line[:-1] if line.endswith(b"\n") else line
            chunk.append((line[:-1] if line.endswith(b"\r") else line).decode())
        if not chunk:
            break
        t0 = time.perf_counter()
        vectors = embed_chunk(session, tok, chunk, n_max, pad_id, cls)
        secs += time.perf_counter() - t0
        for v in vectors:
            w("[" + ",".join(repr(float(x)) for x in v) + "]\n")
        texts += len(chunk)
    sys.stdout.flush()
    print(json.dumps({"texts": texts, "seconds": round(secs, 4),
                      "texts_per_second": round(texts / secs, 2) if secs else None}), file=sys.stderr)


if __name__ == "__main__":
    main()
