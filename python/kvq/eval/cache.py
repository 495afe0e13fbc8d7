"""The model's KV cache through kvq's reference, layer by layer.

Every layer's keys and values (one KV head, ``[T][256]``) are quantized with ``kvq.quantize_head``
and dequantized with ``kvq.dequantize_head``; attention then reads the dequantized values (S4.5:
exactly what kvq's own attention, S11, reads), with RoPE applied after dequantization for pre-RoPE
keys. numpy does the attention arithmetic rather than ``kvq_attention_decode`` because the model is
run as a prefill: 1,024 queries per layer, each over its causal (and windowed) prefix, which the
scalar double-precision reference would take hours to do; ``kvq.eval.run`` checks on every
configuration that the two agree within S12.3's bound at the last position of a global layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence

import numpy as np

import kvq

from . import model as M

SCHEMES = ("uniform", "nf", "kmeans", "fisher")


@dataclass(frozen=True)
class CacheConfig:
    """One rung of the ablation ladder.

    keys: "token" (per-token groups, as values are quantized), "channel-online" (per-channel groups
    over blocks of ``key_block`` tokens, S4.3; 0 = the whole sequence, one block) or
    "channel-calibrated" (per-channel ranges from the calibration text, S4.2/S6.9).
    rope: "pre" (quantize before RoPE, S9) or "post". scheme: "uniform" (asymmetric integers, S3.2),
    "nf" (NormalFloat, S6.1), "kmeans" (S6.6 on the calibration text), "fisher" (S6.6 weighted
    by Fisher information). outliers: ppm of dense-and-sparse outliers (S7; for calibrated keys the
    fraction the calibration leaves outside [lo, hi]). sinks: first tokens kept in fp16 (S8).
    beyond_range: calibrated keys only, what an element outside its channel's range becomes (S7.3):
    "outliers" (stored exactly in fp16, the default) or "clamp" (the range's end code, no key outliers).
    key_range_ppm: calibrated keys, the fraction S6.9 trims from the calibration samples when it is
    not ``outliers`` (None: the same), e.g. full ranges (0) for clamped keys with 1% value outliers.
    """

    name: str
    bits: int
    keys: str = "channel-calibrated"
    rope: str = "pre"
    scheme: str = "uniform"
    outliers: int = 0
    sinks: int = 0
    key_block: int = 0
    value_group: int = 0
    q_norm: bool = False
    beyond_range: str = "outliers"
    key_range_ppm: Optional[int] = None

    def range_ppm(self) -> int:
        return self.outliers if self.key_range_ppm is None else self.key_range_ppm

    def label(self) -> str:
        parts = [f"{self.bits}-bit", {"token": "per-token keys", "channel-online": "per-channel keys (online"
                                      + (f", blocks of {self.key_block})" if self.key_block else ", one block)"),
                                      "channel-calibrated": "per-channel keys (calibrated)"}[self.keys],
                 f"{self.rope}-RoPE", {"uniform": "uniform", "nf": "NormalFloat", "kmeans": "k-means",
                                      "fisher": "Fisher k-means"}[self.scheme]]
        if self.outliers:
            parts.append(f"{self.outliers / 1e4:g}% outliers")
        if self.sinks:
            parts.append(f"{self.sinks} sink")
        if self.beyond_range == "clamp":
            parts.append("keys clamped to the " + ("full calibration range" if self.range_ppm() == 0 else
                                                   f"range that leaves {self.range_ppm() / 1e4:g}% outside"))
        return ", ".join(parts)


@dataclass
class Calibration:
    """What calibration on a held-out text gives, per layer: key ranges (pre- and post-RoPE, per
    outlier fraction) and codebooks (per configuration family)."""

    keys: List[np.ndarray]      # pre-RoPE keys [T][256] per layer
    values: List[np.ndarray]
    rope_tables: Dict[float, tuple]
    fisher_keys: Optional[List[np.ndarray]] = None    # squared gradients, pre-RoPE keys
    fisher_values: Optional[List[np.ndarray]] = None
    # S6.6's default. It stops before the assignments settle on the eval's 10^5 and more samples per
    # codebook (levels still move by up to 0.08 of the half-range after 25 iterations; about 400
    # converge, at 9 times the time): --kmeans-iterations.
    kmeans_iterations: int = 25
    _ranges: Dict[tuple, List[np.ndarray]] = field(default_factory=dict)
    _books: Dict[tuple, List[tuple]] = field(default_factory=dict)

    def key_samples(self, layer: int, rope: str) -> np.ndarray:
        k = self.keys[layer]
        if rope == "post":
            cos, sin = self.rope_tables[M.rope_base(layer)]
            k = M.rope(k, cos, sin)
        return k

    def ranges(self, rope: str, outliers: int, sinks: int = 0) -> List[np.ndarray]:
        """S6.9's per-channel ranges, per layer, from the calibration keys without their first
        ``sinks`` tokens: a sink stays fp16 in the cache (S8), so, as kvq_calibration_samples does for
        codebooks, it must not take one of the range's outlier places (the BOS token is among the
        extremes of about 5% of Gemma's key channels, four times chance)."""
        key = (rope, outliers, sinks)
        if key not in self._ranges:
            self._ranges[key] = [kvq.calibrate_channel_ranges(self.key_samples(l, rope)[sinks:], outliers)
                                 for l in range(M.N_LAYERS)]
        return self._ranges[key]

    def codebooks(self, config: CacheConfig) -> List[tuple]:
        """Per layer (key codebook, value codebook) for a NUQ config: S6.6 k-means on the samples
        the calibration text gives under that very config (kvq_calibration_samples)."""
        key = (config.keys, config.rope, config.bits, config.outliers, config.sinks, config.key_block,
               config.value_group, config.scheme, config.q_norm, config.beyond_range, config.key_range_ppm)
        if key in self._books:
            return self._books[key]
        if config.scheme == "fisher" and self.fisher_keys is None:
            raise RuntimeError("Fisher-weighted k-means needs Fisher information: run with --fisher (jax)")
        books = []
        probe = replace(config, scheme="nf")
        for layer in range(M.N_LAYERS):
            kcfg, vcfg = head_configs(probe, layer, self, len(self.keys[layer]))
            fk = self.fisher_keys[layer] if config.scheme == "fisher" else None
            fv = self.fisher_values[layer] if config.scheme == "fisher" else None
            if config.rope == "post" and fk is not None:
                fk = None  # gradients are of the pre-RoPE keys; post-RoPE samples go unweighted
            zk, wk = kvq.calibration_samples(kcfg, self.key_samples(layer, config.rope), fk)
            zv, wv = kvq.calibration_samples(vcfg, self.values[layer], fv)
            for side, z in (("keys", zk), ("values", zv)):
                if z.size == 0:  # e.g. online blocks longer than the calibration text stay fp16 (S4.3)
                    raise ValueError(f"{config.name}: layer {layer}'s {side} give k-means no samples on "
                                     f"{len(self.keys[layer])} calibration tokens (use more tokens)")
            it = self.kmeans_iterations
            books.append((kvq.calibrate_codebook(zk, wk if fk is not None else None, config.bits, it, config.q_norm),
                          kvq.calibrate_codebook(zv, wv if fv is not None else None, config.bits, it, config.q_norm)))
        self._books[key] = books
        return books


def _quantizer(config: CacheConfig, codebook: Optional[kvq.Codebook]) -> kvq.Quantizer:
    if config.scheme == "uniform":
        return kvq.Quantizer("asym", config.bits)
    return kvq.Quantizer("nuq", config.bits, codebook if codebook is not None else kvq.normalfloat(config.bits))


def head_configs(config: CacheConfig, layer: int, calibration: Optional[Calibration], n_tokens: int,
                 books: Optional[tuple] = None):
    """The kvq head configurations (keys, values) of a layer under config."""
    policy = kvq.TokenPolicy("quantize_all", 0, config.sinks, 0)
    kbook, vbook = books if books is not None else (None, None)
    if config.keys == "token":
        kcfg = kvq.HeadConfig(role="values", quantizer=_quantizer(config, kbook), group_size=config.value_group,
                              outlier_ppm=config.outliers, policy=policy)
    elif config.keys == "channel-online":
        kcfg = kvq.HeadConfig(role="keys", key_mode="online", quantizer=_quantizer(config, kbook),
                              group_size=config.key_block or n_tokens, outlier_ppm=config.outliers, policy=policy)
    else:
        assert calibration is not None
        kcfg = kvq.HeadConfig(role="keys", key_mode="calibrated", quantizer=_quantizer(config, kbook),
                              channel_range=calibration.ranges(config.rope, config.range_ppm(), config.sinks)[layer], policy=policy,
                              beyond_range=config.beyond_range)
    vcfg = kvq.HeadConfig(role="values", quantizer=_quantizer(config, vbook), group_size=config.value_group,
                          outlier_ppm=config.outliers, policy=policy)
    return kcfg, vcfg


class QuantizedCache:
    """The cache function of :func:`kvq.eval.model.hidden_states` for one configuration; it keeps
    each layer's quantized tensors (the last pass's) and error sums."""

    def __init__(self, config: CacheConfig, calibration: Optional[Calibration]) -> None:
        self.config = config
        self.calibration = calibration
        self.books = (calibration.codebooks(config) if config.scheme in ("kmeans", "fisher") else None)
        self.tensors: List[tuple] = []
        self.err = {"k": [0.0, 0.0], "v": [0.0, 0.0]}
        self.outliers = {"k": [0, 0], "v": [0, 0]}

    def __call__(self, layer: int, keys: np.ndarray, values: np.ndarray, cos: np.ndarray, sin: np.ndarray):
        c = self.config
        books = self.books[layer] if self.books is not None else None
        kcfg, vcfg = head_configs(c, layer, self.calibration, len(keys), books)
        post = M.rope(keys, cos, sin)
        k_in = keys if c.rope == "pre" else post
        kq = kvq.quantize_head(kcfg, k_in)
        vq = kvq.quantize_head(vcfg, values)
        kd = kq.dequantize()
        k_read = M.rope(kd, cos, sin) if c.rope == "pre" else kd
        v_read = vq.dequantize()
        self.tensors.append((kq, vq))
        for name, got, want, qt in (("k", k_read, post, kq), ("v", v_read, values, vq)):
            self.err[name][0] += float(np.sum((got.astype(np.float64) - want) ** 2))
            self.err[name][1] += float(np.sum(want.astype(np.float64) ** 2))
            self.outliers[name][0] += qt.n_outliers
            self.outliers[name][1] += qt.n_tokens * qt.head_dim
        return k_read, v_read

    def relative_error(self, name: str) -> float:
        e, n = self.err[name]
        return (e / n) ** 0.5 if n else 0.0

    def outlier_fraction(self, name: str) -> float:
        o, n = self.outliers[name]
        return o / n if n else 0.0
