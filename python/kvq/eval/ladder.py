"""The configurations: KVQuant's ablation ladder at 2, 3 and 4 bits, and the CI smoke."""
from __future__ import annotations

from typing import List

from .cache import CacheConfig

ONE_PERCENT = 10000


def rungs(bits: int) -> List[CacheConfig]:
    """KVQuant's ladder (their Table 1 order), then the variants the issue asks for: codebooks,
    outliers, sinks, key modes, and calibrated keys clamped to their range instead of storing what
    lies beyond it as outliers (S7.3's beyond_range, spec 1.2.0).

    "1%" is outlier_ppm 10000, whose count S7.1 (since spec 1.2.0) rounds up per tail: 2 + 2 of a
    value row of 256 (1.56%), 1 + 1 per channel of an online block of 128 tokens (1.56%), and, for
    calibrated ranges, 3 + 3 of 512 or 6 + 6 of 1024 calibration samples per channel (1.17%)."""
    b = f"{bits}b"
    calibrated = dict(keys="channel-calibrated", rope="pre")
    return [
        CacheConfig(f"{b}-token-post", bits, keys="token", rope="post"),
        CacheConfig(f"{b}-channel-post", bits, keys="channel-online", rope="post"),
        CacheConfig(f"{b}-channel-pre", bits, keys="channel-online", rope="pre"),
        CacheConfig(f"{b}-calibrated-post", bits, keys="channel-calibrated", rope="post"),
        CacheConfig(f"{b}-calibrated-pre", bits, **calibrated),
        CacheConfig(f"{b}-calibrated-pre-clamp", bits, beyond_range="clamp", **calibrated),
        CacheConfig(f"{b}-calibrated-pre-nf", bits, scheme="nf", **calibrated),
        CacheConfig(f"{b}-calibrated-pre-kmeans", bits, scheme="kmeans", **calibrated),
        CacheConfig(f"{b}-calibrated-pre-fisher", bits, scheme="fisher", **calibrated),
        CacheConfig(f"{b}-calibrated-pre-nf-1%", bits, scheme="nf", outliers=ONE_PERCENT, **calibrated),
        CacheConfig(f"{b}-calibrated-pre-kmeans-1%", bits, scheme="kmeans", outliers=ONE_PERCENT, **calibrated),
        CacheConfig(f"{b}-calibrated-pre-kmeans-1%-sink", bits, scheme="kmeans", outliers=ONE_PERCENT, sinks=1,
                    **calibrated),
        CacheConfig(f"{b}-calibrated-pre-fisher-1%-sink", bits, scheme="fisher", outliers=ONE_PERCENT, sinks=1,
                    **calibrated),
        CacheConfig(f"{b}-calibrated-pre-kmeans-1%-sink-clamp", bits, scheme="kmeans", outliers=ONE_PERCENT,
                    sinks=1, beyond_range="clamp", **calibrated),
        CacheConfig(f"{b}-calibrated-pre-kmeans-1%-sink-clamp-full", bits, scheme="kmeans", outliers=ONE_PERCENT,
                    sinks=1, beyond_range="clamp", key_range_ppm=0, **calibrated),
        CacheConfig(f"{b}-calibrated-pre-fisher-1%-sink-clamp-full", bits, scheme="fisher", outliers=ONE_PERCENT,
                    sinks=1, beyond_range="clamp", key_range_ppm=0, **calibrated),
        CacheConfig(f"{b}-calibrated-post-kmeans-1%-sink", bits, keys="channel-calibrated", rope="post",
                    scheme="kmeans", outliers=ONE_PERCENT, sinks=1),
        CacheConfig(f"{b}-online128-pre-kmeans-1%-sink", bits, keys="channel-online", rope="pre", key_block=128,
                    scheme="kmeans", outliers=ONE_PERCENT, sinks=1),
        CacheConfig(f"{b}-online128-pre-nf-1%-sink", bits, keys="channel-online", rope="pre", key_block=128,
                    scheme="nf", outliers=ONE_PERCENT, sinks=1),
    ]


def full_ladder() -> List[CacheConfig]:
    return [c for bits in (3, 2, 4) for c in rungs(bits)]


# The full KVQuant recipe: calibrated per-channel pre-RoPE keys, k-means codebooks, 1% outliers,
# one sink (Fisher weights when --fisher).
def full_recipe(bits: int) -> CacheConfig:
    return CacheConfig(f"{bits}b-calibrated-pre-kmeans-1%-sink", bits, keys="channel-calibrated", rope="pre",
                       scheme="kmeans", outliers=ONE_PERCENT, sinks=1)


def smoke() -> List[CacheConfig]:
    """What CI runs: the orderings that hold on real data (docs/FIDELITY.md)."""
    return [
        CacheConfig("3b-token-post", 3, keys="token", rope="post"),
        CacheConfig("3b-calibrated-post", 3, keys="channel-calibrated", rope="post"),
        CacheConfig("3b-calibrated-pre", 3, keys="channel-calibrated", rope="pre"),
        full_recipe(4),
    ]
