"""The files ``python -m kvq eval --export`` writes for the kvq tool (the model itself runs in the
real-model step of tools/run-python-tests.sh): layout, positions, modality and RoPE bases."""
import numpy as np

import kvq
from kvq.eval import export


def test_write_cache_files_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    layers, tokens, d, heads = 3, 7, 256, 4
    keys = rng.standard_normal((layers, tokens, d)).astype(np.float32)
    values = rng.standard_normal((layers, tokens, d)).astype(np.float32)
    queries = rng.standard_normal((layers, heads, d)).astype(np.float32)
    cal_k = rng.standard_normal((layers, 5, d)).astype(np.float32)
    cal_v = rng.standard_normal((layers, 5, d)).astype(np.float32)
    paths = export.write_cache_files(tmp_path / "out", keys, values, queries, cal_k, cal_v, "10000,10000,1000000")
    kv = kvq.read_kvt(paths["gemma3-kv.kvt"])
    assert kv.keys.shape == (layers, 1, tokens, d) and kv.dtype == "fp32"
    np.testing.assert_array_equal(kv.keys[:, 0], keys)
    np.testing.assert_array_equal(kv.values[:, 0], values)
    np.testing.assert_array_equal(kv.positions, np.arange(tokens))
    np.testing.assert_array_equal(kv.modality, np.zeros(tokens))  # all text (S10.1)
    q = kvq.read_kvt(paths["gemma3-queries.kvt"])
    # kvq inspect --queries: n_heads = query heads of the one KV head, one token per query position
    assert q.keys.shape == (layers, heads, 1, d) and q.values is None
    np.testing.assert_array_equal(q.keys[:, :, 0], queries)
    np.testing.assert_array_equal(q.positions, [tokens - 1])
    cal = kvq.read_kvt(paths["gemma3-calibration.kvt"])
    np.testing.assert_array_equal(cal.keys[:, 0], cal_k)
    assert paths["gemma3-rope-bases.txt"].read_text() == "10000,10000,1000000\n"


def test_rope_bases_follow_the_model():
    bases = export.rope_bases().split(",")
    assert len(bases) == 18
    # Gemma 3: every sixth layer is global (base 1e6), the others local (1e4)
    assert [i for i, b in enumerate(bases) if b == "1000000"] == [5, 11, 17]
    assert set(bases) == {"10000", "1000000"}
