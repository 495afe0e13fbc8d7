"""Statistics of a KV cache that decide how well it quantizes, measured the same way on a real
model's cache (``python -m kvq eval``) and on the generator's (S14, ``kvq.synth_kv``).

Every statistic is over head slices ``[n_tokens][head_dim]`` (one layer's, one KV head's keys or
values); token 0 is left out of the per-channel statistics (it is measured on its own, as the
first-token norm), so a sink does not count as a channel outlier.

* ``key_outlier_channels``: channels per slice whose RMS over tokens is above 6 times the slice's
  median channel RMS (mean over slices);
* ``key_kurtosis``: the excess kurtosis of each key channel over tokens, median over channels and
  slices (0 for a normal distribution);
* ``key_ppm_beyond_6_sigma``: key elements more than 6 standard deviations from their channel's
  mean, in parts per million;
* ``key_outlier_channels_low_frequency``: the fraction of those channels whose rotate-half RoPE pair
  index (``c mod head_dim/2``) is in the top quarter, the pairs of lowest frequency;
* ``key_mean_energy``: the fraction of the keys' energy (sum of squares) in the per-channel means;
* ``key_first_token_norm``, ``value_first_token_norm``: the norm of token 0's row over the median
  row norm (mean over slices).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

OUTLIER_CHANNEL_FACTOR = 6.0


@dataclass
class KvStatistics:
    key_outlier_channels: float
    key_outlier_channels_low_frequency: float
    key_kurtosis: float
    key_ppm_beyond_6_sigma: float
    key_mean_energy: float
    key_first_token_norm: float
    value_first_token_norm: float
    n_slices: int
    n_tokens: int
    head_dim: int

    def as_dict(self) -> dict:
        return asdict(self)


def _first_token_norm(x: np.ndarray) -> float:
    norms = np.linalg.norm(x.astype(np.float64), axis=-1)  # [slices][tokens]
    return float(np.mean(norms[:, 0] / np.median(norms, axis=1)))


def measure(keys: np.ndarray, values: np.ndarray, head_dim: int) -> KvStatistics:
    """Statistics of keys and values shaped ``[..., n_tokens, head_dim]`` (leading axes: slices)."""
    k = np.asarray(keys, dtype=np.float64).reshape(-1, keys.shape[-2], head_dim)
    v = np.asarray(values, dtype=np.float64).reshape(-1, values.shape[-2], head_dim)
    body = k[:, 1:, :]
    mean = body.mean(axis=1, keepdims=True)
    centred = body - mean
    std = np.sqrt(np.mean(centred ** 2, axis=1, keepdims=True))
    rms = np.sqrt(np.mean(body ** 2, axis=1))                      # [slices][channels]
    outlier = rms > OUTLIER_CHANNEL_FACTOR * np.median(rms, axis=1, keepdims=True)
    outlier_channels = np.mean(np.sum(outlier, axis=1))
    half = head_dim // 2
    pair = np.arange(head_dim) % half if half else np.zeros(head_dim, int)
    low = float(np.sum(outlier & (pair >= half - half // 4)[None, :]) / max(np.sum(outlier), 1))
    live = std[:, 0, :] > 0                                         # channels that are not constant
    with np.errstate(invalid="ignore", divide="ignore"):
        kurt = np.mean(centred ** 4, axis=1) / std[:, 0, :] ** 4 - 3.0
        beyond = (np.abs(centred) > 6.0 * std) & live[:, None, :]
    energy = float(np.sum(mean ** 2) * body.shape[1] / np.sum(body ** 2))
    return KvStatistics(
        key_outlier_channels=float(outlier_channels),
        key_outlier_channels_low_frequency=low,
        key_kurtosis=float(np.median(kurt[live])),
        key_ppm_beyond_6_sigma=float(1e6 * np.sum(beyond) / body.size),
        key_mean_energy=energy,
        key_first_token_norm=_first_token_norm(k),
        value_first_token_norm=_first_token_norm(v),
        n_slices=k.shape[0], n_tokens=k.shape[1], head_dim=head_dim)
