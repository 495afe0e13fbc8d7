#!/usr/bin/env python3
"""FlashInfer's decode attention, a baseline of `kvq bench` study (a): fp16 K/V and fp8 e4m3 K/V
with a per-tensor scale (the format vLLM and FlashInfer store). Prints one JSON object per
format on stdout, one line each:

  {"format": "fp16-flashinfer", "available": true, "flashinfer": "0.5.0", "time_ms": {...}, "bytes_read": N}
  {"format": "fp8-e4m3-flashinfer", "available": false, "reason": "..."}

One decode step for a batch of one sequence: every query head against `context` keys and values
per KV head (NHD layout, no RoPE: the keys are post-RoPE, as FlashInfer's users store them),
through BatchDecodeWithPagedKVCacheWrapper with one page per 16 tokens (the paged layout serving
engines use) and, where it exists, single_decode_with_kv_cache. CUDA events around each call,
after warm-up (FlashInfer compiles its kernels on first use, outside the timed runs)."""
import argparse
import json
import sys


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def time_calls(torch, fn, runs, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    return {"median": median(times), "min": min(times), "max": max(times), "runs": len(times)}


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
    names = ["fp16-flashinfer", "fp8-e4m3-flashinfer"]
    try:
        import torch
        import flashinfer
    except Exception as e:  # not installed here: the bench records why
        for n in names:
            print(json.dumps({"format": n, "available": False, "reason": "import failed: %s" % e}))
        return 0
    dev = torch.device("cuda", a.device)
    hq, hk, d, n = a.kv_heads * a.q_per_kv, a.kv_heads, a.head_dim, a.context
    page = 16
    pages = (n + page - 1) // page
    for name in names:
        try:
            fp8 = name.startswith("fp8")
            q = torch.randn(1, hq, d, device=dev, dtype=torch.float16)
            kv = torch.randn(pages, 2, page, hk, d, device=dev, dtype=torch.float16)
            scale = None
            if fp8:
                amax = kv.abs().max().float()
                scale = float(amax / 448.0)
                kv = (kv.float() / scale).to(torch.float8_e4m3fn)
            workspace = torch.empty(128 * 1024 * 1024, dtype=torch.uint8, device=dev)
            w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(workspace, "NHD", use_tensor_cores=a.q_per_kv > 1)
            indptr = torch.tensor([0, pages], dtype=torch.int32, device=dev)
            indices = torch.arange(pages, dtype=torch.int32, device=dev)
            last = torch.tensor([n - (pages - 1) * page], dtype=torch.int32, device=dev)
            w.plan(indptr, indices, last, hq, hk, d, page, pos_encoding_mode="NONE",
                   q_data_type=torch.float16, kv_data_type=kv.dtype)
            kwargs = {"k_scale": scale, "v_scale": scale} if fp8 else {}
            t = time_calls(torch, lambda: w.run(q, kv, **kwargs), a.runs, a.warmup)
            bytes_read = 2 * n * hk * d * kv.element_size()
            print(json.dumps({"format": name, "available": True, "flashinfer": flashinfer.__version__,
                              "device": torch.cuda.get_device_name(dev), "bytes_read": bytes_read,
                              "time_ms": t}), flush=True)
        except Exception as e:  # e.g. a kernel FlashInfer cannot build here, or out of memory
            print(json.dumps({"format": name, "available": False, "reason": "%s: %s" % (type(e).__name__, e)}),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
