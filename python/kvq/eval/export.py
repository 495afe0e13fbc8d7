"""Gemma 3 270M's KV cache as kvq files, for the ``kvq`` command-line tool (docs/LEARN.md, last step).

``python -m kvq eval --export DIR`` runs the model over the evaluation text with its unquantized cache
(as :mod:`kvq.eval.run` does for the fp32 reference) and writes, for the C tool:

- ``DIR/gemma3-kv.kvt``: every layer's keys (pre-RoPE, after the model's QK-norm) and values, one KV
  head of 256 channels per layer, fp32, with their positions and modality text (S16.3);
- ``DIR/gemma3-queries.kvt``: the 4 query heads of every layer at the last position (pre-RoPE), in the
  layout ``kvq inspect --attention --queries`` reads: n_heads = 4 query heads of the one KV head;
- ``DIR/gemma3-calibration.kvt``: the same for the calibration text, for ``kvq calibrate``;
- ``DIR/gemma3-rope-bases.txt``: the RoPE base of every layer (1e6 on the global layers, 1e4 on the
  others), comma-separated, as ``kvq inspect --rope-base`` takes it.

With at most 512 tokens the last position's queries read every token on every layer (the sliding
window is 512), so ``kvq inspect --attention`` computes exactly the attention the model computes there.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Dict

import numpy as np

import kvq

from . import model as M
from .run import CALIBRATION_TEXT, EVAL_TEXT, read_tokens

FILES = ("gemma3-kv.kvt", "gemma3-queries.kvt", "gemma3-calibration.kvt", "gemma3-rope-bases.txt")


def rope_bases() -> str:
    """Every layer's RoPE base, comma-separated (``kvq inspect --rope-base``)."""
    return ",".join(f"{M.rope_base(layer):.0f}" for layer in range(M.N_LAYERS))


def write_cache_files(directory: Path, keys: np.ndarray, values: np.ndarray, queries: np.ndarray,
                      calibration_keys: np.ndarray, calibration_values: np.ndarray, bases: str) -> Dict[str, Path]:
    """Writes the four files from arrays: keys and values ``[layers][T][d]`` (one KV head per layer), the
    last position's queries ``[layers][query heads][d]``, the calibration text's keys and values."""
    directory.mkdir(parents=True, exist_ok=True)
    n_layers, n_tokens, _ = keys.shape
    paths = {name: directory / name for name in FILES}
    text = np.zeros(n_tokens, dtype=np.uint8)  # S10.1: 0 = text
    kvq.write_kvt(paths["gemma3-kv.kvt"], keys[:, None], values[:, None], modality=text,
                  positions=np.arange(n_tokens, dtype=np.uint32), dtype="fp32")
    kvq.write_kvt(paths["gemma3-queries.kvt"], keys=queries[:, :, None, :],
                  positions=np.array([n_tokens - 1], dtype=np.uint32), dtype="fp32")
    n_cal = calibration_keys.shape[1]
    kvq.write_kvt(paths["gemma3-calibration.kvt"], calibration_keys[:, None], calibration_values[:, None],
                  modality=np.zeros(n_cal, dtype=np.uint8), positions=np.arange(n_cal, dtype=np.uint32), dtype="fp32")
    paths["gemma3-rope-bases.txt"].write_text(bases + "\n")
    return paths


def export(directory: Path, n_tokens: int, calibration_tokens: int, install: bool = True,
           log: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> Dict[str, Path]:
    M.ensure_packages(install)
    model = M.Gemma3(M.model_path())
    tokens = read_tokens(model, EVAL_TEXT, n_tokens)
    _, trace = M.hidden_states(model, tokens, trace=True)
    assert trace is not None
    _, cal = M.hidden_states(model, read_tokens(model, CALIBRATION_TEXT, calibration_tokens), trace=True)
    assert cal is not None
    queries = np.stack([q[:, -1, :] for q in trace.queries])  # [layers][4][256] at the last position
    paths = write_cache_files(directory, np.stack(trace.keys), np.stack(trace.values), queries,
                              np.stack(cal.keys), np.stack(cal.values), rope_bases())
    log(f"eval: wrote {', '.join(str(p) for p in paths.values())}: Gemma 3 270M's cache over {n_tokens} tokens of "
        f"{EVAL_TEXT} (calibration: {calibration_tokens} tokens of {CALIBRATION_TEXT})")
    if n_tokens > M.WINDOW:
        log(f"eval: note: {n_tokens} tokens exceed the sliding window of {M.WINDOW}: on the local layers the model's "
            f"last query reads only the last {M.WINDOW} tokens, kvq inspect --attention reads them all")
    return paths
