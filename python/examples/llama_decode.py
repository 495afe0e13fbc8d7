#!/usr/bin/env python3
"""Greedy decoding of a small LLaMA-shaped model with random weights on the GPU, once with an fp16
KV cache (PyTorch's scaled_dot_product_attention) and once with kvq's quantized cache
(:class:`kvq.cuda.LayerCache`, one per layer), timing both decode loops.

The model is made here with PyTorch (no download, no transformers): token embedding, n layers of
RMSNorm, grouped-query attention with rotate-half RoPE and a SwiGLU MLP, a final norm and the output
projection, in fp16. Prefill attends over the unquantized keys and values with SDPA in both runs
(kvq quantizes them into the cache as they are appended, KIVI-style); each decode step appends the
step's keys and values and attends through the cache. kvq's run is fed the tokens the fp16 run chose
(teacher forcing), so that both time the same work and their logits can be compared step by step.

    KVQ_CUDA_LIBRARY=build/backends/cuda/libkvq_cuda.so PYTHONPATH=python \
        KVQ_PYTHON_LIBRARY=build/python/libkvq_python.so python3 python/examples/llama_decode.py

Prints the model, both caches' memory, ms per decode step of each, and how far kvq's logits are from
the fp16 run's (top-1 agreement, cosine similarity). Speed is measured, never asserted.

SDPA's backends: by default (``--sdpa no-cudnn``) the runs may use PyTorch's flash, memory-efficient
and math kernels but not cuDNN's, whose attention builds an execution graph for every new key length
(on Hopper PyTorch can prefer it, and a decode loop has a new length at every step: the fp16 run of
2026-12-03 took 40 ms per step against kvq's 1.9). ``--sdpa auto`` leaves the choice to PyTorch.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from typing import Any, Optional, Sequence


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--heads", type=int, default=16, help="query heads")
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=5632)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--prompt", type=int, default=2048, help="prompt tokens per sequence")
    p.add_argument("--steps", type=int, default=64, help="decode steps (timed)")
    p.add_argument("--warmup", type=int, default=4, help="decode steps before the timed ones")
    p.add_argument("--bits", type=int, default=4, choices=(2, 4, 8))
    p.add_argument("--key-group", type=int, default=128, help="tokens per key block (S4.3)")
    p.add_argument("--profile", default="fp16", choices=("fp16", "fp32"))
    p.add_argument("--sdpa", default="no-cudnn", choices=("no-cudnn", "auto"),
                   help="SDPA backends PyTorch may use (no-cudnn: flash, memory-efficient, math)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results to this file")
    a = p.parse_args(argv)
    for name in ("layers", "hidden", "heads", "kv_heads", "intermediate", "vocab", "batch", "prompt", "steps"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.warmup < 0:
        p.error("--warmup must be at least 0")
    if a.hidden % a.heads != 0:
        p.error(f"--hidden {a.hidden} is not a multiple of --heads {a.heads}")
    if a.heads % a.kv_heads != 0:
        p.error(f"--heads {a.heads} is not a multiple of --kv-heads {a.kv_heads}")
    if (a.hidden // a.heads) % 2 != 0:
        p.error("the head dimension must be even (RoPE rotates pairs)")
    return a


class Model:
    """The random-weight LLaMA: weights in fp16 on the device, std 1/sqrt(fan-in)."""

    def __init__(self, torch: Any, a: argparse.Namespace, device: Any) -> None:
        self.t, self.a = torch, a
        g = torch.Generator(device="cpu").manual_seed(a.seed)
        d, hd = a.hidden, a.hidden // a.heads

        def w(rows: int, cols: int) -> Any:
            return (torch.randn(rows, cols, generator=g) / math.sqrt(cols)).to(device=device, dtype=torch.float16)

        self.embed = (torch.randn(a.vocab, d, generator=g)).to(device=device, dtype=torch.float16)
        self.layers = [dict(wq=w(a.heads * hd, d), wk=w(a.kv_heads * hd, d), wv=w(a.kv_heads * hd, d),
                            wo=w(d, a.heads * hd), w1=w(a.intermediate, d), w3=w(a.intermediate, d),
                            w2=w(d, a.intermediate)) for _ in range(a.layers)]
        self.head = w(a.vocab, d)
        self.head_dim = hd
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        pos = torch.arange(a.prompt + a.warmup + a.steps + 1, dtype=torch.float64)
        angles = torch.outer(pos, inv)
        self.cos = torch.cat([angles.cos(), angles.cos()], dim=-1).to(device=device, dtype=torch.float32)
        self.sin = torch.cat([angles.sin(), angles.sin()], dim=-1).to(device=device, dtype=torch.float32)

    def norm(self, x: Any) -> Any:
        x32 = x.float()
        return (x32 * self.t.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype)

    def rope(self, x: Any, positions: Any) -> Any:
        """rotate-half RoPE of x [batch, heads, tokens, head_dim] at positions [tokens]."""
        cos, sin = self.cos[positions][None, None], self.sin[positions][None, None]
        half = x.shape[-1] // 2
        rotated = self.t.cat([-x[..., half:], x[..., :half]], dim=-1)
        return (x.float() * cos + rotated.float() * sin).to(x.dtype)

    def forward(self, tokens: Any, start: int, attend: Any) -> Any:
        """Logits of the last token of tokens [batch, n] at positions start .. start + n - 1;
        attend(layer, q, k, v, positions) does attention (and keeps the cache)."""
        t, a, hd = self.t, self.a, self.head_dim
        b, n = tokens.shape
        positions = t.arange(start, start + n, device=tokens.device)
        x = self.embed[tokens]
        for i, L in enumerate(self.layers):
            h = self.norm(x)
            q = (h @ L["wq"].T).view(b, n, a.heads, hd).transpose(1, 2)
            k = (h @ L["wk"].T).view(b, n, a.kv_heads, hd).transpose(1, 2)
            v = (h @ L["wv"].T).view(b, n, a.kv_heads, hd).transpose(1, 2)
            o = attend(i, q, k, v, positions)  # [batch, heads, n, head_dim]
            x = x + o.transpose(1, 2).reshape(b, n, a.heads * hd) @ L["wo"].T
            h = self.norm(x)
            x = x + (t.nn.functional.silu(h @ L["w1"].T) * (h @ L["w3"].T)) @ L["w2"].T
        return self.norm(x[:, -1]) @ self.head.T


def sdpa(torch: Any, q: Any, k: Any, v: Any, causal: bool) -> Any:
    attention = torch.nn.functional.scaled_dot_product_attention
    groups = q.shape[1] // k.shape[1]
    if groups > 1 and q.shape[2] == 1:
        # One query token: the heads of a group (consecutive, as enable_gqa pairs them) become the
        # query rows of their KV head, so the fused kernels read each KV head once.
        b, heads, _, d = q.shape
        folded = attention(q.reshape(b, k.shape[1], groups, d), k, v)
        return folded.reshape(b, heads, 1, d)
    if groups > 1:
        try:  # PyTorch >= 2.5 reads the KV heads of a group in place
            return attention(q, k, v, is_causal=causal, enable_gqa=True)
        except TypeError:  # older: expand them
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    return attention(q, k, v, is_causal=causal)


def sdpa_backends(torch: Any, choice: str) -> Any:
    """The context in which both runs call SDPA: with "no-cudnn", every backend but cuDNN's (see the
    module's docstring); with "auto", or a PyTorch without torch.nn.attention, PyTorch's choice."""
    if choice == "auto":
        return contextlib.nullcontext()
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # PyTorch < 2.3: no cuDNN backend to leave out
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


class Fp16Cache:
    """The baseline: RoPE applied, keys and values kept in fp16, SDPA over them."""

    def __init__(self, torch: Any, model: Model, max_tokens: int) -> None:
        a = model.a
        self.t, self.model = torch, model
        shape = (a.batch, a.kv_heads, max_tokens, model.head_dim)
        self.k = [torch.empty(shape, dtype=torch.float16, device=model.embed.device) for _ in range(a.layers)]
        self.v = [torch.empty_like(self.k[0]) for _ in range(a.layers)]
        self.bytes = 2 * a.layers * self.k[0].numel() * 2
        self.length = [0] * a.layers  # tokens held per layer, on the host (no device read per step)

    def __call__(self, layer: int, q: Any, k: Any, v: Any, positions: Any) -> Any:
        first, n = self.length[layer], q.shape[2]
        self.length[layer] += n
        q, k = self.model.rope(q, positions), self.model.rope(k, positions)
        self.k[layer][:, :, first:first + n] = k
        self.v[layer][:, :, first:first + n] = v
        ks, vs = self.k[layer][:, :, :first + n], self.v[layer][:, :, :first + n]
        return sdpa(self.t, q, ks, vs, causal=n > 1)


class KvqCache:
    """kvq's quantized cache, one kvq.cuda.LayerCache per layer. Keys go in before RoPE (kvq rotates
    them, and the query, at their positions); prefill attends over the unquantized chunk."""

    def __init__(self, torch: Any, model: Model, max_tokens: int, kvq: Any, kvq_cuda: Any) -> None:
        a = model.a
        self.t, self.model = torch, model
        keys = kvq.HeadConfig(role="keys", key_mode="online", group_size=a.key_group, outlier_ppm=0,
                              quantizer=kvq.Quantizer("asym", a.bits),
                              policy=kvq.TokenPolicy("quantize_all", 0, 1, 0))
        values = kvq.HeadConfig(role="values", outlier_ppm=0, quantizer=kvq.Quantizer("asym", a.bits),
                                policy=kvq.TokenPolicy("quantize_all", 0, 1, 0))
        self.layers = [kvq_cuda.LayerCache(head_dim=model.head_dim, n_kv_heads=a.kv_heads, n_q_heads=a.heads,
                                           max_seqs=a.batch, max_tokens=max_tokens,
                                           max_append_tokens=a.batch * a.prompt, keys=keys, values=values,
                                           profile=a.profile, dtype="float16", device=model.embed.device)
                       for _ in range(a.layers)]
        self.bytes = sum(c.sizes.cache_bytes for c in self.layers)
        self.total_bytes = sum(c.sizes.total_bytes for c in self.layers)

    def __call__(self, layer: int, q: Any, k: Any, v: Any, positions: Any) -> Any:
        cache = self.layers[layer]
        cache.append(k, v)
        if q.shape[2] > 1:
            rq, rk = self.model.rope(q, positions), self.model.rope(k, positions)
            return sdpa(self.t, rq, rk, v, causal=True)
        return cache.attend(q[:, :, 0]).unsqueeze(2)


def decode(torch: Any, model: Model, attend: Any, prompt: Any, a: argparse.Namespace,
           forced: Optional[Any] = None) -> tuple[Any, list[Any], float]:
    """Prefill, then warm-up and timed decode steps; returns the chosen tokens [batch, steps], the
    logits of each step and the ms per timed step."""
    logits = model.forward(prompt, 0, attend)
    chosen, all_logits = [], []
    total = a.warmup + a.steps
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for step in range(total):
        token = logits.argmax(-1) if forced is None else forced[:, step]
        chosen.append(token)
        if step == a.warmup:
            start.record()
        logits = model.forward(token[:, None], a.prompt + step, attend)
        all_logits.append(logits.float())
    stop.record()
    stop.synchronize()
    return torch.stack(chosen, dim=1), all_logits, start.elapsed_time(stop) / a.steps


def main(argv: Optional[Sequence[str]] = None) -> int:
    a = parse_args(argv)
    try:
        import torch
    except ImportError as e:
        print(f"llama_decode: needs PyTorch ({e})", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("llama_decode: needs a CUDA device (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    import kvq
    import kvq.cuda
    device = torch.device("cuda", 0)
    torch.manual_seed(a.seed)
    with torch.inference_mode(), sdpa_backends(torch, a.sdpa):
        model = Model(torch, a, device)
        max_tokens = a.prompt + a.warmup + a.steps + 1
        prompt = torch.randint(0, a.vocab, (a.batch, a.prompt), device=device)
        base = Fp16Cache(torch, model, max_tokens)
        tokens, ref_logits, base_ms = decode(torch, model, base, prompt, a)
        quant = KvqCache(torch, model, max_tokens, kvq, kvq.cuda)
        _, kvq_logits, kvq_ms = decode(torch, model, quant, prompt, a, forced=tokens)
        for cache in quant.layers:
            cache.check()  # any error only the GPU saw (none expected)
        agree = sum(float((r.argmax(-1) == q.argmax(-1)).float().mean()) for r, q in zip(ref_logits, kvq_logits))
        cosine = sum(float(torch.nn.functional.cosine_similarity(r, q, dim=-1).mean())
                     for r, q in zip(ref_logits, kvq_logits))
        steps = len(ref_logits)
    result = {
        "model": {"layers": a.layers, "hidden": a.hidden, "heads": a.heads, "kv_heads": a.kv_heads,
                  "head_dim": model.head_dim, "intermediate": a.intermediate, "vocab": a.vocab},
        "batch": a.batch, "prompt": a.prompt, "steps": a.steps, "bits": a.bits, "profile": a.profile,
        "sdpa": a.sdpa,
        "device": torch.cuda.get_device_name(device), "torch": torch.__version__,
        "fp16_cache_bytes": base.bytes, "kvq_cache_bytes": quant.bytes, "kvq_device_bytes": quant.total_bytes,
        "fp16_ms_per_step": base_ms, "kvq_ms_per_step": kvq_ms,
        "top1_agreement": agree / steps, "mean_cosine": cosine / steps,
    }
    mib = 1 << 20
    backends = "flash, memory-efficient, math (no cuDNN)" if a.sdpa == "no-cudnn" else "PyTorch's choice"
    print(f"model: {a.layers} layers, hidden {a.hidden}, {a.heads} query heads, {a.kv_heads} KV heads of "
          f"{model.head_dim}, vocab {a.vocab}, random fp16 weights; batch {a.batch}, prompt {a.prompt}, "
          f"{a.steps} timed decode steps on {result['device']} (torch {torch.__version__}, SDPA backends: "
          f"{backends})")
    print(f"KV cache: fp16 {base.bytes / mib:.1f} MiB; kvq int{a.bits} {quant.bytes / mib:.1f} MiB "
          f"({quant.total_bytes / mib:.1f} MiB of device memory with its work space)")
    print(f"decode: fp16 cache {base_ms:.3f} ms/step, kvq int{a.bits} ({a.profile} profile) {kvq_ms:.3f} ms/step "
          f"({base_ms / kvq_ms:.2f}x)")
    print(f"kvq against fp16, same tokens: top-1 agreement {100 * result['top1_agreement']:.1f}%, mean cosine "
          f"similarity of the logits {result['mean_cosine']:.5f}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
