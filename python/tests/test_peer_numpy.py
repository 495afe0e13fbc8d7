"""Kernels of other projects' formats written in numpy, handed in as files (docs/PLUGINS.md).

Small numpy implementations of ggml's q4_0 (S17.3) and of KIVI's layout (S17.4), written from the
spec's text, quantize the golden cases' inputs; their bytes and dequantized values are written under
the golden output names and judged by ``kvq conform --check-outputs DIR --format F``. They pass; so
does q4_0 rounded half to even after a division (S17.6 accepts it: the codes differ only at code
boundaries). Two variants with real mistakes are rejected, naming the case: q4_0 codes truncated
toward zero instead of rounded, and KIVI's range subtracted in fp32 (the HF/numpy habit, S17.9
example 4).

Needs the kvq tool: $KVQ_CLI, else build/tools/kvq of this tree (tools/run-python-tests.sh runs
after the C build); the tests are skipped, saying so, without it.
"""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

F16, F32 = np.float16, np.float32


def _cli():
    tool = os.environ.get("KVQ_CLI") or str(Path(__file__).resolve().parents[2] / "build" / "tools" / "kvq")
    if not os.access(tool, os.X_OK):
        pytest.skip(f"no kvq tool at {tool} (build it, or set KVQ_CLI)")
    return tool


# ---- ggml q4_0 (S17.3) ----------------------------------------------------------------------------
def q4_0(x, rounding="ggml"):
    """x[n][d] float32 -> (the S17.3 bytes, the dequantized values)."""
    n, d = x.shape
    blocks = x.reshape(n, d // 32, 32)
    # max: the element of largest magnitude, the first one when several tie (np.argmax: the first)
    first = np.argmax(np.abs(blocks), axis=2)
    mx = np.take_along_axis(blocks, first[..., None], axis=2)[..., 0]
    d32 = (mx / F32(-8)).astype(F32)                    # exact: -8 is a power of two
    with np.errstate(divide="ignore"):
        inv = np.where(d32 != 0, F32(1) / d32, F32(0)).astype(F32)
    d16 = d32.astype(F16)                               # fp16(d32), nearest, ties to even
    u = (blocks * inv[..., None]).astype(F32)
    if rounding == "ggml":
        q = np.minimum(15, np.trunc((u + F32(8.5)).astype(F32))).astype(np.int32)
    elif rounding == "half_even":                       # another rounding of the same quotient
        q = np.clip(np.round(u) + 8, 0, 15).astype(np.int32)
    else:                                               # "truncate": a bug
        q = np.clip(np.trunc(u) + 8, 0, 15).astype(np.int32)
    y = ((q - 8).astype(F32) * d16.astype(F32)[..., None]).astype(F32)
    packed = (q[..., :16] | (q[..., 16:] << 4)).astype(np.uint8)    # byte j: elements j and j + 16
    out = np.concatenate([d16.astype("<f2").view(np.uint8).reshape(n, d // 32, 2), packed], axis=2)
    return out.tobytes(), y.reshape(n, d)


# ---- KIVI (S17.4) ---------------------------------------------------------------------------------
def _kivi_groups(v, bits, fp32_range):
    """v[..., G] float16 groups -> codes, scale, mn (fp16), dequantized (fp32)."""
    top = F16((1 << bits) - 1)
    mn, mx = v.min(axis=-1), v.max(axis=-1)
    if fp32_range:                                      # a bug: the range kept in fp32
        scale = ((mx.astype(F32) - mn.astype(F32)) / F32(top)).astype(F16)
    else:
        scale = (mx - mn) / top                         # fp16 operations, each rounded to fp16
    t = v - mn[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = t / scale[..., None]
    u = np.where(t == 0, F16(0), u)                     # scale 0: u is 0 where t is, +inf elsewhere
    codes = np.round(np.clip(u, F16(0), top).astype(F32)).astype(np.uint32)     # torch.round: half to even
    y = (codes.astype(F32) * scale.astype(F32)[..., None] + mn.astype(F32)[..., None]).astype(F32)
    return codes, scale, mn, y


def _pack_words(codes, bits):
    """codes[..., k] -> 32-bit words of 32 / bits codes each, code i in bits i * bits (LSB first)."""
    per = 32 // bits
    c = codes.reshape(*codes.shape[:-1], codes.shape[-1] // per, per).astype(np.uint64)
    shifts = (np.arange(per, dtype=np.uint64) * bits)
    return (c << shifts).sum(axis=-1).astype("<u4")


def kivi(x, role, bits, group, residual, fp32_range=False):
    """x[n][d] float32 -> (the S17.4 bytes, the dequantized values)."""
    n, d = x.shape
    xh = x.astype(F16)
    n_q = residual * (n // residual) if role == "keys" else n - min(n, residual)
    y = xh.astype(F32)                                  # residual tokens: their fp16 values
    if role == "keys":                                  # per channel, groups of G tokens
        lines = xh[:n_q].T                              # [d][n_q]
        codes, scale, mn, deq = _kivi_groups(lines.reshape(d, n_q // group, group), bits, fp32_range)
        y[:n_q] = deq.reshape(d, n_q).T
        codes = codes.reshape(d, n_q)
    else:                                               # per token, groups of G channels
        codes, scale, mn, deq = _kivi_groups(xh[:n_q].reshape(n_q, d // group, group), bits, fp32_range)
        y[:n_q] = deq.reshape(n_q, d)
        codes = codes.reshape(n_q, d)
    parts = [_pack_words(codes, bits), scale.astype("<f2"), mn.astype("<f2"), xh[n_q:].astype("<f2")]
    return b"".join(p.tobytes() for p in parts), y


# ---- handing them in ------------------------------------------------------------------------------
def _hand_in(golden, out_dir, pattern, kernel):
    cases = golden.select(operation="peer_quantize", pattern=pattern)
    assert cases, pattern
    for case in cases:
        data, y = kernel(case.array("x"), case.params["config"])
        (out_dir / f"{case.name}.data.bin").write_bytes(data)
        (out_dir / f"{case.name}.dequantized.bin").write_bytes(y.astype("<f4").tobytes())
    return [c.name for c in cases]


def _conform(golden, out_dir, fmt, pattern):
    cmd = [_cli(), "conform", "--check-outputs", str(out_dir), "--golden", str(golden.directory), "--format", fmt,
           "--case", pattern, "--level", "1-1"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


Q4_0 = {
    "ggml": lambda x, c: q4_0(x),
    "half_even": lambda x, c: q4_0(x, "half_even"),
    "truncate": lambda x, c: q4_0(x, "truncate"),
}
KIVI = {
    "kivi": lambda x, c: kivi(x, c["role"], c["bits"], c["group_size"], c["residual"]),
    "fp32_range": lambda x, c: kivi(x, c["role"], c["bits"], c["group_size"], c["residual"], fp32_range=True),
}


def _boundary_codes(stdout):
    """The 'boundary codes' column of the L1 row: codes accepted at a code boundary (S17.6)."""
    row = next(line for line in stdout.splitlines() if line.startswith("L1 peer quantize"))
    return int(row.split()[-2])


@pytest.mark.parametrize("fmt, variant", [("q4_0", "ggml"), ("q4_0", "half_even"), ("kivi", "kivi")])
def test_numpy_kernels_pass(golden, tmp_path, fmt, variant):
    _cli()
    pattern = f"peer_{fmt}_*"
    names = _hand_in(golden, tmp_path, pattern, (Q4_0 if fmt == "q4_0" else KIVI)[variant])
    r = _conform(golden, tmp_path, fmt, pattern)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"result: PASS ({len(names)} cases passed, 0 skipped)" in r.stdout, r.stdout
    # The spec's own arithmetic reproduces every code; another rounding of the same quotient differs
    # only on the code boundaries the golden inputs plant (S17.6), where it is accepted.
    if variant == "half_even":
        assert _boundary_codes(r.stdout) > 0, r.stdout
    else:
        assert _boundary_codes(r.stdout) == 0, r.stdout


@pytest.mark.parametrize("fmt, variant, field, why", [
    ("q4_0", "truncate", "data.code", "class B (S17.6)"),
    ("kivi", "fp32_range", "data.scale", "the range subtracted in fp32"),
])
def test_numpy_kernels_with_a_mistake_are_rejected(golden, tmp_path, fmt, variant, field, why):
    _cli()
    pattern = f"peer_{fmt}_*"
    names = _hand_in(golden, tmp_path, pattern, (Q4_0 if fmt == "q4_0" else KIVI)[variant])
    r = _conform(golden, tmp_path, fmt, pattern)
    assert r.returncode == 1, r.stdout + r.stderr
    failed = [n for n in names if f"FAIL L1 {n}: {field} [" in r.stdout]
    assert failed, r.stdout  # the failure line names the case and the field
    assert f"case:     {failed[0]}" in r.stdout and why in r.stdout, r.stdout
    assert "result: FAIL" in r.stdout, r.stdout
