#!/usr/bin/env python3
"""Writes a BERT encoder as an ONNX graph, from a model directory's own weights.

For bench/embed.py: ONNX Runtime must run the very weights doc-serve runs
(model.safetensors, config.json), and exporting through torch would mean installing
torch. So the graph is written node by node with the `onnx` package, the architecture
of Hugging Face's BertModel (the same as src/embed/bert.rs): word + position + type
embeddings and a LayerNorm, then per layer self-attention (padding masked by an
additive bias), output projection, residual LayerNorm, feed-forward with the exact
(erf) GELU, residual LayerNorm. Inputs input_ids, attention_mask, token_type_ids
(int64, batch x seq); output last_hidden_state (float, batch x seq x hidden), the
names fastembed and Hugging Face exports use. Pooling is left to the caller.

Usage: bert_onnx.py MODEL_DIR OUT.onnx   (run with the bench venv's python: needs onnx, numpy)
"""
import json, math, os, struct, sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None}


def read_safetensors(path):
    """{name: float32 array}: an 8-byte header length, a JSON header, then raw data."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if name.endswith("position_ids"):
            continue  # a buffer some checkpoints save: positions are 0..seq here
        dtype = DTYPES.get(t["dtype"])
        if dtype is None:
            sys.exit(f"{path}: tensor {name} is {t['dtype']}; only F32 and F16 are supported")
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dtype).reshape(t["shape"]).astype(np.float32)
    return out


class Graph:
    def __init__(self, weights):
        self.w, self.nodes, self.inits, self.n = weights, [], [], 0

    def name(self, hint):
        self.n += 1
        return f"{hint}_{self.n}"

    def const(self, array, hint="c"):
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, key, transpose=False):
        w = self.w[key]
        return self.const(w.T.copy() if transpose else w, key.replace(".", "_"))

    def op(self, kind, inputs, hint=None, **attrs):
        out = self.name(hint or kind.lower())
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def linear(self, x, prefix):
        y = self.op("MatMul", [x, self.weight(prefix + ".weight", transpose=True)])
        return self.op("Add", [y, self.weight(prefix + ".bias")])

    def layer_norm(self, x, prefix, eps):
        keys = (prefix + ".weight", prefix + ".bias")
        if keys[0] not in self.w:
            keys = (prefix + ".gamma", prefix + ".beta")
        return self.op("LayerNormalization", [x, self.weight(keys[0]), self.weight(keys[1])],
                       axis=-1, epsilon=eps)


def build(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    if "embeddings.word_embeddings.weight" not in w:
        w = {k[len("bert."):]: v for k, v in w.items() if k.startswith("bert.")}
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    head_dim, eps = hidden // heads, cfg.get("layer_norm_eps", 1e-12)
    act = cfg.get("hidden_act", "gelu")
    if act != "gelu":
        sys.exit(f"hidden_act {act!r}: only the exact (erf) gelu is written here")
    g = Graph(w)

    ids, mask, types = "input_ids", "attention_mask", "token_type_ids"
    seq = g.op("Gather", [g.op("Shape", [ids]), g.const(np.int64(1))])
    positions = g.op("Range", [g.const(np.int64(0)), seq, g.const(np.int64(1))])
    x = g.op("Add", [g.op("Gather", [g.weight("embeddings.word_embeddings.weight"), ids]),
                     g.op("Gather", [g.weight("embeddings.position_embeddings.weight"), positions])])
    x = g.op("Add", [x, g.op("Gather", [g.weight("embeddings.token_type_embeddings.weight"), types])])
    x = g.layer_norm(x, "embeddings.LayerNorm", eps)
    # (mask - 1) * 1e9, as (batch, 1, 1, seq): 0 on tokens, -1e9 on padding.
    m = g.op("Cast", [mask], to=TensorProto.FLOAT)
    bias = g.op("Mul", [g.op("Sub", [m, g.const(np.float32(1))]), g.const(np.float32(1e9))])
    bias = g.op("Unsqueeze", [bias, g.const(np.array([1, 2], np.int64))])
    split_shape = g.const(np.array([0, 0, heads, head_dim], np.int64))
    merge_shape = g.const(np.array([0, 0, hidden], np.int64))
    scale = g.const(np.float32(1 / math.sqrt(head_dim)))
    sqrt2, half, one = g.const(np.float32(math.sqrt(2))), g.const(np.float32(0.5)), g.const(np.float32(1))

    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def heads_of(name, perm):
            t = g.op("Reshape", [g.linear(x, p + "attention.self." + name), split_shape])
            return g.op("Transpose", [t], perm=perm)

        q = heads_of("query", [0, 2, 1, 3])
        k = heads_of("key", [0, 2, 3, 1])
        v = heads_of("value", [0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), bias])
        probs = g.op("Softmax", [scores], axis=-1)
        ctx = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge_shape])
        x = g.layer_norm(g.op("Add", [g.linear(ctx, p + "attention.output.dense"), x]),
                         p + "attention.output.LayerNorm", eps)
        h = g.linear(x, p + "intermediate.dense")
        erf = g.op("Erf", [g.op("Div", [h, sqrt2])])
        h = g.op("Mul", [g.op("Mul", [h, half]), g.op("Add", [erf, one])])
        x = g.layer_norm(g.op("Add", [g.linear(h, p + "output.dense"), x]), p + "output.LayerNorm", eps)

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    dims = ["batch", "seq"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, dims) for n in (ids, mask, types)]
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [hidden])
    graph = helper.make_graph(g.nodes, "bert", inputs, [output], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="doc-serve bench/lib/bert_onnx.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: bert_onnx.py MODEL_DIR OUT.onnx")
    model = build(sys.argv[1])
    tmp = sys.argv[2] + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, sys.argv[2])


if __name__ == "__main__":
    main()
