"""The configurations: KVQuant's ablation ladder at 2, 3 and 4 bits, and the CI smoke."""
from __future__ import annotations

from typing import List

from .cache import CacheConfig

ONE_PERCENT = 10000


def rungs(bits: int) -> List[CacheConfig]:
    """KVQuant's ladder (their Table 1 order), then the variants the issue asks for: codebooks,
    outliers, sinks, key modes."""
    b = f"{bits}b"
    calibrated = dict(keys="channel-calibrated", rope="pre")
    return [
        CacheConfig(f"{b}-token-post", bits, keys="token", rope="post"),
        CacheConfig(f"{b}-channel-post", bits, keys="channel-online", rope="post"),
        CacheConfig(f"{b}-channel-pre", bits, keys="channel-online", rope="pre"),
        CacheConfig(f"{b}-calibrated-post", bits, keys="channel-calibrated", rope="post"),
        CacheConfig(f"{b}-calibrated-pre", bits, **calibrated),
        CacheConfig(f"{b}-calibrated-pre-nf", bits, scheme="nf", **calibrated),
        CacheConfig(f"{b}-calibrated-pre-kmeans", bits, scheme="kmeans", **calibrated),
        CacheConfig(f"{b}-calibrated-pre-fisher", bits, scheme="fisher", **calibrated),
        CacheConfig(f"{b}-calibrated-pre-nf-1%", bits, scheme="nf", outliers=ONE_PERCENT, **calibrated),
        CacheConfig(f"{b}-calibrated-pre-kmeans-1%", bits, scheme="kmeans", outliers=ONE_PERCENT, **calibrated),
        CacheConfig(f"{b}-calibrated-pre-kmeans-1%-sink", bits, scheme="kmeans", outliers=ONE_PERCENT, sinks=1,
                    **calibrated),
        CacheConfig(f"{b}-calibrated-pre-fisher-1%-sink", bits, scheme="fisher", outliers=ONE_PERCENT, sinks=1,
                    **calibrated),
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
