"""`kvq accuracy` on files handed in (docs/PLUGINS.md, "Formats kvq does not know"): a per-token absmax
int4 quantizer with an fp32 scale, a format kvq does not know, written in numpy, quantizes the inputs
`kvq accuracy --write-inputs` writes; its dequantized values and its attention are handed back with
`--outputs`, and the scores kvq prints are the ones the documented definitions give when numpy
computes them itself (NMSE over a point's heads, max relative error per head's tensor)."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest


def _cli():
    tool = os.environ.get("KVQ_CLI") or str(Path(__file__).resolve().parents[2] / "build" / "tools" / "kvq")
    if not os.access(tool, os.X_OK):
        pytest.skip(f"no kvq tool at {tool} (build it, or set KVQ_CLI)")
    return tool


def _absmax(x, bits):
    top = np.float32(2 ** (bits - 1) - 1)
    scale = (np.abs(x).max(axis=1, keepdims=True) / top).astype(np.float32)
    return (np.clip(np.round(x / scale), -top, top) * scale).astype(np.float32)


def _attention(k, v, q):
    s = q.astype(np.float64) @ k.T.astype(np.float64) / np.sqrt(k.shape[1])
    w = np.exp(s - s.max(axis=1, keepdims=True))
    return ((w / w.sum(axis=1, keepdims=True)) @ v.astype(np.float64)).astype(np.float32)


def test_accuracy_of_files_matches_the_definitions(tmp_path):
    kvq = _cli()
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    subprocess.run([kvq, "accuracy", "--write-inputs", str(inputs)], check=True, capture_output=True)
    outputs.mkdir()
    points = json.loads((inputs / "inputs.json").read_text())["points"]
    expected = {}
    for p in points:
        h, n, d, nq = p["n_heads"], p["n_tokens"], p["head_dim"], p["n_q"]
        keys = np.fromfile(inputs / p["keys"]["file"], "<f4").reshape(h, n, d)
        values = np.fromfile(inputs / p["values"]["file"], "<f4").reshape(h, n, d)
        q = np.fromfile(inputs / p["q"]["file"], "<f4").reshape(h, nq, d)
        kq = np.stack([_absmax(keys[i], 4) for i in range(h)])
        vq = np.stack([_absmax(values[i], 4) for i in range(h)])
        out = np.stack([_attention(kq[i], vq[i], q[i]) for i in range(h)])
        ref = np.stack([_attention(keys[i], values[i], q[i]) for i in range(h)])
        for name, arr in (("keys", kq), ("values", vq), ("out", out)):
            arr.astype("<f4").tofile(outputs / f"{p['name']}.b4.{name}.bin")
        expected[p["name"]] = {}
        for metric, got, want in (("keys", kq, keys), ("values", vq, values), ("attention", out, ref)):
            err = got.astype(np.float64) - want
            expected[p["name"]][metric] = (
                (err ** 2).sum() / (want.astype(np.float64) ** 2).sum(),
                max(np.abs(err[i]).max() / np.abs(want[i]).max() for i in range(h)))
    report = tmp_path / "acc.json"
    r = subprocess.run([kvq, "accuracy", "--outputs", str(outputs), "--json", str(report)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "This is an accuracy score, not conformance" in r.stdout
    doc = json.loads(report.read_text())
    assert doc["bits"] == [4]
    row = next(x for x in doc["rows"] if x["source"] == "files")
    assert row["status"] == "ok" and row["attention_by"] == "files"
    for scored in row["points"]:
        for metric, (nmse, max_rel) in expected[scored["point"]].items():
            assert scored[metric]["nmse"] == pytest.approx(nmse, rel=1e-6), (scored["point"], metric)
            assert scored[metric]["max_rel"] == pytest.approx(max_rel, rel=1e-6), (scored["point"], metric)
        # numpy's float64 attention against kvq's: the arithmetic alone, far below llama.cpp's 5e-4
        assert scored["attention_arith"]["nmse"] < 1e-9
    # kvq's own format at 4 bits is among the comparison rows, on the same data
    assert any(x["source"] == "reference" and x["format"] == "kvq uniform asym" and x["bits"] == 4
               for x in doc["rows"])
