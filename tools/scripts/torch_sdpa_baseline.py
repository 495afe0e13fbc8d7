#!/usr/bin/env python3
"""fp16 decode attention with PyTorch's scaled_dot_product_attention, the
PyTorch baseline of `kvq bench` study (a). Prints one JSON object on stdout:

  {"available": true, "torch": "2.x", "device": "...", "time_ms": {"median": .., "min": .., "max": .., "runs": N}, ...}
  {"available": false, "reason": "..."}

One decode step: one query token for every query head against a cache of
`context` keys and values per KV head (GQA: the KV heads are expanded with
enable_gqa where PyTorch supports it, else repeat_interleave outside the timed
region). Timed with CUDA events around the call only, after warm-up."""
import argparse
import json
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kv-heads", type=int, required=True)
    p.add_argument("--q-per-kv", type=int, required=True)
    p.add_argument("--head-dim", type=int, required=True)
    p.add_argument("--context", type=int, required=True)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", type=int, default=0)
    a = p.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # no PyTorch: the bench records why
        print(json.dumps({"available": False, "reason": "import torch failed: %s" % e}))
        return 0
    if not torch.cuda.is_available():
        print(json.dumps({"available": False, "reason": "torch.cuda.is_available() is False"}))
        return 0
    dev = torch.device("cuda", a.device)
    hq = a.kv_heads * a.q_per_kv
    try:
        q = torch.randn(1, hq, 1, a.head_dim, device=dev, dtype=torch.float16)
        k = torch.randn(1, a.kv_heads, a.context, a.head_dim, device=dev, dtype=torch.float16)
        v = torch.randn(1, a.kv_heads, a.context, a.head_dim, device=dev, dtype=torch.float16)
        kwargs = {}
        if a.q_per_kv > 1:
            try:
                F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                kwargs["enable_gqa"] = True
            except TypeError:  # older PyTorch: expand the KV heads once, outside timing
                k = k.repeat_interleave(a.q_per_kv, dim=1)
                v = v.repeat_interleave(a.q_per_kv, dim=1)
        for _ in range(a.warmup):
            F.scaled_dot_product_attention(q, k, v, **kwargs)
        times = []
        for _ in range(a.runs):
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            F.scaled_dot_product_attention(q, k, v, **kwargs)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
    except Exception as e:  # e.g. out of memory at the largest contexts
        print(json.dumps({"available": False, "reason": "%s: %s" % (type(e).__name__, e)}))
        return 0
    times.sort()
    n = len(times)
    median = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    print(json.dumps({
        "available": True,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(dev),
        "gqa": "enable_gqa" if kwargs else ("repeat_interleave" if a.q_per_kv > 1 else "none"),
        "bytes_read": 2 * k.numel() * k.element_size(),
        "time_ms": {"median": median, "min": times[0], "max": times[-1], "runs": n},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
