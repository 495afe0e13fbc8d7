"""Runs the model over a text with the unquantized cache and with each configuration's kvq cache,
and measures perplexity, KL divergence, K/V and attention-output errors."""
from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

import kvq

from . import model as M
from .cache import CacheConfig, Calibration, QuantizedCache

# Texts every Debian machine has (base-files): evaluate on the GPL-3, calibrate on the GPL-2.
EVAL_TEXT = Path("/usr/share/common-licenses/GPL-3")
CALIBRATION_TEXT = Path("/usr/share/common-licenses/GPL-2")
CHECK_LAYER = 5  # a global layer: the last query reads every token, so kvq_attention_decode applies


@dataclass
class Result:
    name: str
    label: str
    bits: int
    ppl: float
    ppl_delta: float        # relative to the unquantized cache
    ppl_delta_se: float     # its standard error over the tokens (per-token NLL differences, paired)
    kl: float               # mean KL(P_fp32 || P_kvq) per predicted token, nats
    kl_se: float            # its standard error over the tokens
    top1: float             # fraction of positions whose most likely next token is unchanged
    key_error: float        # relative RMS error of the keys attention reads (post-RoPE)
    value_error: float
    attention_error: float  # relative RMS error of attention outputs, same queries, per layer pooled
    key_outliers: float     # fraction of key elements stored as fp16 outliers
    value_outliers: float
    kvq_check_ratio: float  # max |numpy attention - kvq_attention_decode| / S12.3 bound (CHECK_LAYER)
    seconds: float


@dataclass
class Reference:
    tokens: np.ndarray
    log_probs: np.ndarray   # [T-1][vocab] of the unquantized cache, float32
    nll: float
    ppl: float


def read_tokens(model: M.Gemma3, path: Path, n_tokens: int) -> np.ndarray:
    ids = model.tokenizer.encode(path.read_text(encoding="utf-8"))
    if len(ids) < n_tokens:
        raise ValueError(f"{path} has {len(ids)} tokens, fewer than {n_tokens}")
    return np.asarray(ids[:n_tokens], dtype=np.int64)


def reference(model: M.Gemma3, tokens: np.ndarray) -> Reference:
    hidden, _ = M.hidden_states(model, tokens)
    logp = np.empty((len(tokens) - 1, model.embedding.shape[0]), dtype=np.float32)
    for start, chunk in M.token_log_probs(model, hidden[:-1]):
        logp[start:start + len(chunk)] = chunk
    nll = float(-np.mean(logp[np.arange(len(tokens) - 1), tokens[1:]]))
    return Reference(tokens, logp, nll, float(np.exp(nll)))


def calibrate(model: M.Gemma3, tokens: np.ndarray, fisher: bool, kmeans_iterations: int = 25) -> Calibration:
    _, trace = M.hidden_states(model, tokens, trace=True)
    assert trace is not None
    tables = {base: M.rope_tables(len(tokens), base) for base in (M.GLOBAL_BASE, M.LOCAL_BASE)}
    cal = Calibration(trace.keys, trace.values, tables, kmeans_iterations=kmeans_iterations)
    if fisher:
        from .fisher import fisher_information

        cal.fisher_keys, cal.fisher_values = fisher_information(model, tokens)
    return cal


def _kvq_check(cache: QuantizedCache, trace: M.Trace, n_tokens: int) -> float:
    """numpy's attention at the last position of CHECK_LAYER against kvq_attention_decode on the
    same quantized tensors, as a fraction of S12.3's bound. NaN for per-token keys: kvq's
    attention reads keys per channel only (a per-token key tensor has the values' layout)."""
    if cache.config.keys == "token":
        return float("nan")
    kq, vq = cache.tensors[CHECK_LAYER]
    q = trace.queries[CHECK_LAYER][:, -1, :]
    base = M.rope_base(CHECK_LAYER)
    if cache.config.rope == "pre":
        rope = kvq.Rope("half", base)
    else:  # post-RoPE keys: kvq reads them as they are, so q is rotated here
        cos, sin = M.rope_tables(n_tokens, base)
        q = M.rope(q, cos[-1], sin[-1])
        rope = kvq.Rope("none", base)
    positions = np.arange(n_tokens, dtype=np.uint32)
    ref = kvq.attention_decode(kq, vq, q, n_tokens - 1, positions, rope)
    bound = kvq.attention_error_bound(kq, vq, q, n_tokens - 1, positions, rope)
    got = trace.attention[CHECK_LAYER][:, -1, :]
    return float(np.max(np.abs(got.astype(np.float64) - ref) / bound))


def evaluate(model: M.Gemma3, ref: Reference, config: CacheConfig, calibration: Calibration) -> Result:
    t0 = time.time()
    cache = QuantizedCache(config, calibration)
    hidden, trace = M.hidden_states(model, ref.tokens, cache, trace=True)
    assert trace is not None
    n = len(ref.tokens)
    m = n - 1
    nll_change = np.empty(m)   # per token: NLL with the kvq cache minus NLL with the fp32 cache
    kl_tok = np.empty(m)
    agree = 0
    targets = ref.tokens[1:]
    for start, logp in M.token_log_probs(model, hidden[:-1]):
        stop = start + len(logp)
        rows = np.arange(len(logp))
        p_ref = ref.log_probs[start:stop]
        nll_change[start:stop] = p_ref[rows, targets[start:stop]] - logp[rows, targets[start:stop]]
        kl_tok[start:stop] = np.sum(np.exp(p_ref) * (p_ref - logp), axis=-1)
        agree += int(np.sum(np.argmax(logp, axis=-1) == np.argmax(p_ref, axis=-1)))
    a_err = a_norm = 0.0
    for got, want in zip(trace.attention, trace.exact_attention):
        a_err += float(np.sum((got.astype(np.float64) - want) ** 2))
        a_norm += float(np.sum(want.astype(np.float64) ** 2))
    # perplexity = fp32's * exp(mean NLL change); the standard errors treat tokens as independent
    # (they are not quite: a lower bound on the text's noise, and the scale of "within noise" below).
    ratio = float(np.exp(np.mean(nll_change)))
    ppl_se = ratio * float(np.std(nll_change, ddof=1)) / m ** 0.5
    kl_se = float(np.std(kl_tok, ddof=1)) / m ** 0.5
    return Result(config.name, config.label(), config.bits, ref.ppl * ratio, ratio - 1.0, ppl_se,
                  float(np.mean(kl_tok)), kl_se, agree / m,
                  cache.relative_error("k"), cache.relative_error("v"), (a_err / a_norm) ** 0.5,
                  cache.outlier_fraction("k"), cache.outlier_fraction("v"), _kvq_check(cache, trace, n),
                  time.time() - t0)


def run(configs: Sequence[CacheConfig], n_tokens: int, calibration_tokens: int, fisher: bool,
        eval_text: Path = EVAL_TEXT, calibration_text: Path = CALIBRATION_TEXT, install: bool = True,
        kmeans_iterations: int = 25,
        log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict:
    """The whole evaluation; returns a JSON-able dict (the input of the report)."""
    t0 = time.time()
    M.ensure_packages(install)
    model = M.Gemma3(M.model_path())
    log(f"eval: model loaded in {time.time() - t0:.1f} s")
    tokens = read_tokens(model, eval_text, n_tokens)
    ref = reference(model, tokens)
    log(f"eval: unquantized cache: perplexity {ref.ppl:.4f} over {n_tokens} tokens of {eval_text}")
    cal = calibrate(model, read_tokens(model, calibration_text, calibration_tokens), fisher, kmeans_iterations)
    log(f"eval: calibrated on {calibration_tokens} tokens of {calibration_text}" + (" with Fisher information" if fisher else ""))
    results = []
    for config in configs:
        if config.scheme == "fisher" and not fisher:
            log(f"eval: {config.name}: skipped (needs --fisher)")
            continue
        r = evaluate(model, ref, config, cal)
        results.append(r)
        log(f"eval: {r.name:<28} ppl {r.ppl:9.4f} ({100 * r.ppl_delta:+7.2f}% +- {100 * r.ppl_delta_se:.2f})  "
            f"KL {r.kl:.5f} +- {r.kl_se:.5f}  "
            f"K err {r.key_error:.4f}  V err {r.value_error:.4f}  attn err {r.attention_error:.4f}  "
            f"kvq check {r.kvq_check_ratio:.2g}  ({r.seconds:.1f} s)")
    return {"format": "kvq-eval", "format_version": 1, "model": M.MODEL_PACKAGE, "reader": M.READER_PACKAGE,
            "kvq_version": kvq.__version__, "spec_version": kvq.spec_version(),
            "eval_text": str(eval_text), "n_tokens": n_tokens, "calibration_text": str(calibration_text),
            "calibration_tokens": calibration_tokens, "fisher": fisher, "kmeans_iterations": kmeans_iterations,
            "fp32_ppl": ref.ppl,
            "seconds": time.time() - t0, "results": [asdict(r) for r in results],
            "kv_statistics": _statistics(cal)}


def _statistics(cal: Calibration) -> dict:
    from .. import kvstats

    return kvstats.measure(np.stack(cal.keys), np.stack(cal.values), head_dim=M.HEAD_DIM).as_dict()
