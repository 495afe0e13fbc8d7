"""kvq.cuda (the CUDA device API for PyTorch) and its example, on the CPU side: the package imports
without PyTorch, the strides of every tensor layout, the errors of a missing library or of tensors
that cannot work, and the example's argument checks. What needs a GPU is skipped here and run by
tools/run-gpu.sh (steps deviceapi and torch-example)."""
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kvq
import kvq.cuda as kc

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "llama_decode.py"

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
needs_gpu = pytest.mark.skipif(torch is None or not torch.cuda.is_available() or not os.environ.get("KVQ_CUDA_LIBRARY"),
                               reason="needs PyTorch with a CUDA device and KVQ_CUDA_LIBRARY (libkvq_cuda.so)")


def small_configs():
    keys = kvq.HeadConfig(role="keys", key_mode="online", group_size=16, outlier_ppm=0)
    values = kvq.HeadConfig(role="values", outlier_ppm=0)
    return dict(head_dim=64, n_kv_heads=2, n_q_heads=4, max_seqs=2, max_tokens=64, keys=keys, values=values)


def test_importing_needs_no_torch():
    code = "import sys, kvq.cuda; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_rows_strides_of_both_layouts():
    # [batch 2, heads 4, tokens 8, head_dim 16], contiguous
    assert kc.rows_strides((2, 4, 8, 16), (512, 128, 16, 1), 4, 16, "keys") == (512, 128, 16)
    # the projection's output [batch 2, tokens 8, heads 4, head_dim 16] as it is ("bthd")
    assert kc.rows_strides((2, 8, 4, 16), (512, 64, 16, 1), 4, 16, "keys", "bthd") == (512, 16, 64)
    # ... and the same memory transposed to [batch, heads, tokens, head_dim] without a copy
    assert kc.rows_strides((2, 4, 8, 16), (512, 16, 64, 1), 4, 16, "keys") == (512, 16, 64)


@pytest.mark.parametrize("shape, strides, layout, words", [
    ((4, 8, 16), (128, 16, 1), "bhtd", "4-d"),
    ((2, 3, 8, 16), (384, 128, 16, 1), "bhtd", "3 heads"),
    ((2, 4, 8, 32), (1024, 256, 32, 1), "bhtd", "of 32 channels"),
    ((2, 4, 8, 16), (512, 128, 16, 2), "bhtd", "contiguous"),
    ((2, 4, 8, 16), (512, 128, 16, 1), "thbd", "layout"),
])
def test_rows_strides_refuse_what_cannot_work(shape, strides, layout, words):
    with pytest.raises(ValueError, match=words):
        kc.rows_strides(shape, strides, 4, 16, "keys", layout)


def test_query_strides():
    assert kc.query_strides((2, 8, 16), (128, 16, 1), 8, 16, "q") == (128, 16)
    # one decode token: [batch, heads, 1, head_dim], e.g. q[:, :, -1:] of a transposed projection
    assert kc.query_strides((2, 8, 1, 16), (128, 16, 128, 1), 8, 16, "q") == (128, 16)
    with pytest.raises(ValueError, match="q: shape"):
        kc.query_strides((2, 4, 16), (64, 16, 1), 8, 16, "q")
    with pytest.raises(ValueError, match="contiguous"):
        kc.query_strides((2, 8, 16), (256, 32, 2), 8, 16, "q")


def test_a_missing_library_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setattr(kc, "_library", None)
    monkeypatch.setenv("KVQ_CUDA_LIBRARY", str(tmp_path / "libkvq_cuda.so"))
    with pytest.raises(ImportError, match="KVQ_ENABLE_CUDA=ON"):
        kc.load_library()


def test_a_bad_profile_is_refused_before_anything_else():
    with pytest.raises(ValueError, match="profile 'fp8'"):
        kc.LayerCache(profile="fp8", **small_configs())


def test_without_torch_the_cache_says_what_it_needs(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    with pytest.raises(ImportError, match="PyTorch"):
        kc.LayerCache(**small_configs())


@needs_torch
def test_the_cache_lives_on_a_cuda_device():
    with pytest.raises(ValueError, match="not a CUDA device"):
        kc.LayerCache(device="cpu", **small_configs())


def load_example():
    spec = importlib.util.spec_from_file_location("llama_decode", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, words", [
    (["--batch", "0"], "--batch must be at least 1"),
    (["--hidden", "100"], "not a multiple of --heads"),
    (["--heads", "16", "--kv-heads", "5"], "not a multiple of --kv-heads"),
    (["--bits", "3"], "invalid choice"),
])
def test_the_example_checks_its_arguments_before_torch(argv, words, capsys):
    example = load_example()
    with pytest.raises(SystemExit) as e:
        example.parse_args(argv)
    assert e.value.code == 2
    assert words in capsys.readouterr().err


def test_the_example_defaults_are_a_llama_shape():
    a = load_example().parse_args([])
    assert a.hidden // a.heads == 128 and a.heads % a.kv_heads == 0
    assert a.sdpa == "no-cudnn"  # cuDNN's SDPA rebuilds its graph at every new length (the docstring)


@needs_torch
def test_the_example_leaves_cudnn_out_of_sdpa():
    example = load_example()
    with example.sdpa_backends(torch, "no-cudnn"):
        q = torch.randn(1, 2, 1, 8)
        k = v = torch.randn(1, 2, 5, 8)
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v)  # the math backend on the CPU
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1)
    assert torch.allclose(out, weights @ v, atol=1e-5)
    with example.sdpa_backends(torch, "auto"):
        assert torch.allclose(torch.nn.functional.scaled_dot_product_attention(q, k, v), out, atol=1e-5)


@pytest.mark.skipif(torch is not None, reason="PyTorch is installed")
def test_the_example_without_torch_says_so(capsys):
    assert load_example().main(["--steps", "1"]) == 2
    assert "PyTorch" in capsys.readouterr().err


@needs_gpu
def test_a_small_cache_on_the_gpu_attends_like_sdpa():
    """int8 keys and values: kvq's decode attention is close to SDPA over the unquantized rows."""
    torch.manual_seed(0)
    cfg = small_configs()
    cfg["keys"].quantizer = kvq.Quantizer("asym", 8)
    cfg["values"].quantizer = kvq.Quantizer("asym", 8)
    cache = kc.LayerCache(rope=kvq.Rope("none"), **cfg)
    k = torch.randn(2, 2, 40, 64, device="cuda", dtype=torch.float16)
    v = torch.randn_like(k)
    q = torch.randn(2, 4, 64, device="cuda", dtype=torch.float16)
    cache.append(k, v)
    out = cache.attend(q)
    cache.check()
    want = torch.nn.functional.scaled_dot_product_attention(
        q[:, :, None].float(), k.repeat_interleave(2, dim=1).float(), v.repeat_interleave(2, dim=1).float())[:, :, 0]
    assert cache.length(0) == 40 and cache.length(1) == 40
    assert torch.allclose(out.float(), want, atol=5e-2), float((out.float() - want).abs().max())
    assert cache.read(1, 0, "values").n_tokens == 40


@needs_gpu
def test_a_layer_moved_through_host_memory_attends_as_before():
    """state_to_host, then move into new memory: the same bits, and the old memory is not read."""
    torch.manual_seed(1)
    cfg = small_configs()
    cache = kc.LayerCache(rope=kvq.Rope("half"), **cfg)
    k = torch.randn(2, 2, 40, 64, device="cuda", dtype=torch.float16)
    v = torch.randn_like(k)
    q = torch.randn(2, 4, 64, device="cuda", dtype=torch.float16)
    cache.append(k, v)
    before = cache.attend(q).clone()
    host = cache.state_to_host()
    torch.cuda.synchronize()
    old = cache._memory
    memory = torch.empty(cache.sizes.total_bytes, dtype=torch.uint8, device="cuda")
    memory[: cache.sizes.cache_bytes].copy_(host)
    cache.move(memory)
    old.fill_(0xA5)
    after = cache.attend(q)
    cache.check()
    assert torch.equal(before, after)
    with pytest.raises(kvq.KvqError, match="cache_bytes"):
        cache.move(memory[: cache.sizes.cache_bytes - 256])
    with pytest.raises(ValueError, match="uint8"):
        cache.move(memory.float())
    assert cache._memory is memory


@needs_gpu
def test_layers_sharing_a_work_space_attend_as_with_their_own():
    """set_work_space: two caches given one work space give the bits they gave with their own."""
    torch.manual_seed(2)
    cfg = small_configs()
    caches = [kc.LayerCache(rope=kvq.Rope("half"), **cfg) for _ in range(2)]
    k = torch.randn(2, 2, 40, 64, device="cuda", dtype=torch.float16)
    v = torch.randn_like(k)
    q = torch.randn(2, 4, 64, device="cuda", dtype=torch.float16)
    for c in caches:
        c.append(k, v)
    before = [c.attend(q).clone() for c in caches]
    work = torch.full((caches[0].sizes.scratch_bytes,), 0xA5, dtype=torch.uint8, device="cuda")
    for c in caches:
        c.set_work_space(work)
    after = [c.attend(q).clone() for c in caches]
    for c in caches:
        c.check()
    assert all(torch.equal(b, a) for b, a in zip(before, after))
    with pytest.raises(kvq.KvqError, match="scratch_bytes"):
        caches[0].set_work_space(work[:256])
    caches[0].set_work_space(None)
    assert torch.equal(caches[0].attend(q), before[0])
