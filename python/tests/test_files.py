"""The three file formats through the C readers and writers."""
import numpy as np
import pytest

import kvq
from kvq import errors


def _kv(layers=2, heads=2, tokens=40, dim=64):
    keys = np.empty((layers, heads, tokens, dim), np.float32)
    values = np.empty_like(keys)
    for l in range(layers):
        for h in range(heads):
            keys[l, h], values[l, h], modality = kvq.synth_kv(tokens, dim, 100 + 10 * l + h)
    return keys, values, modality


def test_kvt_round_trip(tmp_path):
    keys, values, modality = _kv()
    kvq.write_kvt(tmp_path / "a.kvt", keys, values, modality=modality, positions=np.arange(40) * 2)
    back = kvq.read_kvt(tmp_path / "a.kvt")
    assert back.dtype == "fp16" and back.shape == (2, 2, 40, 64)
    assert back.keys.tobytes() == keys.tobytes() and back.values.tobytes() == values.tobytes()
    assert back.positions.tolist() == list(range(0, 80, 2)) and back.spec_version == kvq.spec_version()


def test_kvt_refuses_values_fp16_cannot_hold(tmp_path):
    keys, values, _ = _kv()
    keys[0, 0, 0, 0] = 0.1
    with pytest.raises(errors.BadArgumentError, match="fp16"):
        kvq.write_kvt(tmp_path / "b.kvt", keys, values)
    assert not (tmp_path / "b.kvt").exists()
    kvq.write_kvt(tmp_path / "b.kvt", keys, values, dtype="fp32")
    assert kvq.read_kvt(tmp_path / "b.kvt").keys.tobytes() == keys.tobytes()


def test_kvc_round_trip(tmp_path):
    keys, _, _ = _kv()
    ranges = np.stack([np.stack([kvq.calibrate_channel_ranges(keys[l, h]) for h in range(2)]) for l in range(2)])
    books = [kvq.normalfloat(3), kvq.normalfloat(4)]
    kvq.write_kvc(tmp_path / "c.kvc", kvq.Calibration(ranges, books, None, 10000))
    back = kvq.read_kvc(tmp_path / "c.kvc")
    assert back.key_ranges.tobytes() == ranges.tobytes() and back.key_codebooks == books
    assert back.value_codebooks is None and back.outlier_ppm == 10000
    bad = ranges.copy()
    bad[0, 0, 0] = [1, 0]
    with pytest.raises(errors.BadCalibrationError):
        kvq.write_kvc(tmp_path / "d.kvc", kvq.Calibration(bad))
    assert not (tmp_path / "d.kvc").exists()


def test_kvqz_round_trip_and_corruption(tmp_path):
    keys, values, modality = _kv()
    kcfg = kvq.HeadConfig(role="keys", key_mode="online", group_size=8)
    vcfg = kvq.HeadConfig(role="values")
    tensors = [[(kvq.quantize_head(kcfg, keys[l, h], modality), kvq.quantize_head(vcfg, values[l, h], modality))
                for h in range(2)] for l in range(2)]
    path = tmp_path / "e.kvqz"
    kvq.write_kvqz(path, tensors)
    back = kvq.read_kvqz(path)
    for l in range(2):
        for h in range(2):
            for r in range(2):
                assert back[l][h][r].dequantize().tobytes() == tensors[l][h][r].dequantize().tobytes()
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    (tmp_path / "bad.kvqz").write_bytes(bytes(data))
    with pytest.raises(errors.FileCorruptError) as e:
        kvq.read_kvqz(tmp_path / "bad.kvqz")
    assert "bad.kvqz" in e.value.message
    with pytest.raises(errors.IoError):
        kvq.read_kvt(tmp_path / "missing.kvt")
