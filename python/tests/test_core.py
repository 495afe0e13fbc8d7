"""The binding over the reference: results equal the C library's (via the golden set and the
spec's worked examples), and errors become exceptions with the kvq status and message."""
import numpy as np
import pytest

import kvq
from kvq import errors


def test_version_and_layout():
    assert kvq.spec_version().count(".") == 2
    assert kvq.__version__


def test_quantize_head_reproduces_the_golden_tensors(golden):
    for case in golden.select(operation="quantize_head"):
        qt = case.reference_tensor()
        np.testing.assert_array_equal(qt.params, case.expected("q_params"))
        np.testing.assert_array_equal(qt.codes, case.expected("q_codes"))
        np.testing.assert_array_equal(qt.precision, case.expected("q_precision"))
        deq = qt.dequantize()
        assert deq.tobytes() == case.expected("q_dequantized").tobytes(), case.name


def test_attention_decode_is_the_golden_output(golden):
    for case in golden.select(operation="attention_decode"):
        keys, values = case.reference_tensors()
        out = kvq.attention_decode(keys, values, case.array("q"), case.params["q_position"],
                                   case.array("positions"), case.rope())
        assert out.tobytes() == case.expected("out").tobytes(), case.name
        bound = kvq.attention_error_bound(keys, values, case.array("q"), case.params["q_position"],
                                          case.array("positions"), case.rope())
        assert bound.tobytes() == case.expected("bound").tobytes(), case.name


def test_synth_worked_example():
    # S14.5: n_tokens 4, head_dim 4, seed 7, one outlier channel, tail 0.25, sink, text 1 / image 2
    keys, values, modality = kvq.synth_kv(4, 4, 7, n_outlier_channels=1, tail_probability=0.25, sink_token=1,
                                          image_run=2, text_run=1)
    assert modality.tolist() == [0, 1, 1, 0]
    assert keys[0].tolist() == [-18.0625, 27, -31.546875, 18.015625]
    assert values[3].tolist() == [0.5859375, 0.2379150390625, 0.0384521484375, -0.1715087890625]


def test_fp16_conversions():
    # S2.6 rows
    assert kvq.fp16_from_fp32(np.float32([1.0, 65504, 0.1])).tolist() == [0x3C00, 0x7BFF, 0x2E66]
    assert kvq.fp16_round_up(np.float32([0.1])).tolist() == [0x2E67]
    assert kvq.fp16_round_down(np.float32([-1e-8])).tolist() == [0x8001]
    assert kvq.fp32_from_fp16([0x3C00]).tolist() == [1.0]


def test_codebooks_and_kmeans():
    nf2 = kvq.normalfloat(2)
    assert nf2.bits == 2 and nf2.signposts[0] == -1 and nf2.signposts[-1] == 1
    # S6.6 worked example, unweighted
    z = np.float32([-0.875, -0.625, -0.25, 0.125, 0.25, 0.5, 0.75, 1])
    cb = kvq.calibrate_codebook(z, bits=2)
    assert cb.signposts.tolist() == [-0.75, -0.0625, 0.375, 0.875]
    assert cb.thresholds.tolist() == [-0.40625, 0.15625, 0.625]
    assert kvq.Codebook.from_signposts(cb.signposts) == cb
    with pytest.raises(errors.BadCodebookError):
        kvq.Codebook.from_signposts(np.float32([1, 0, 0.5, 1]))


def test_calibrate_ranges_worked_example_and_signed_zeros():
    x = np.float32([[5, 7], [-3, 7], [0, 7], [1, 7], [2, 7], [9, 7], [-1, 7], [4, 7], [3, 7], [-2, 7]])
    r = kvq.calibrate_channel_ranges(x, 200000)
    assert r.tolist() == [[-2, 5], [7, 7]]
    # S6.9: -0 sorts before +0; the calibrated keys' step is +0 and the file can be written
    z = np.float32([[0.0], [-0.0], [0.0], [-0.0]])
    r = kvq.calibrate_channel_ranges(z, 0)
    assert np.signbit(r[0, 0]) and not np.signbit(r[0, 1])


def test_signed_zero_keys_quantize_and_write(tmp_path):
    keys = np.zeros((8, 32), np.float32)
    keys[1::2, :16] = -0.0
    keys[:, 16:] = np.arange(16, dtype=np.float32)
    ranges = kvq.calibrate_channel_ranges(keys, 0)
    cfg = kvq.HeadConfig(role="keys", key_mode="calibrated", channel_range=ranges, quantizer=kvq.Quantizer("asym", 4),
                         policy=kvq.TokenPolicy("quantize_all", 0, 0, 0))
    k = kvq.quantize_head(cfg, keys)
    assert (k.params[:, 1] & 0x8000 == 0).all()
    v = kvq.quantize_head(kvq.HeadConfig(policy=kvq.TokenPolicy("quantize_all", 0, 0, 0)), keys)
    kvq.write_kvqz(tmp_path / "z.kvqz", [[(k, v)]])


def test_channel_range_length_is_checked():
    # issue 17, finding 6: the binding passes the array's length (kvq_head_config.n_channel_range,
    # spec 1.3.0), so a calibration for another head_dim is refused instead of read past its end
    keys = np.arange(8 * 32, dtype=np.float32).reshape(8, 32) / 64
    ranges = kvq.calibrate_channel_ranges(keys[:, :8], 0)
    cfg = kvq.HeadConfig(role="keys", key_mode="calibrated", channel_range=ranges, quantizer=kvq.Quantizer("asym", 4))
    with pytest.raises(errors.SizeMismatchError) as e:
        kvq.quantize_head(cfg, keys)
    assert "n_channel_range = 8" in e.value.message
    cfg.channel_range = kvq.calibrate_channel_ranges(keys, 0)
    assert kvq.quantize_head(cfg, keys).n_tokens == 8


def test_errors_carry_status_and_message():
    x = np.ones((4, 32), np.float32)
    with pytest.raises(errors.UnsupportedBitsError) as e:
        kvq.quantize_head(kvq.HeadConfig(quantizer=kvq.Quantizer("asym", 5)), x)
    assert e.value.status_name == "KVQ_ERR_UNSUPPORTED_BITS" and "5" in e.value.message
    assert str(e.value).startswith("KVQ_ERR_UNSUPPORTED_BITS: ")
    x[2, 3] = np.nan
    with pytest.raises(errors.NonfiniteInputError):
        kvq.quantize_head(kvq.HeadConfig(), x)
    with pytest.raises(errors.HeadDimPackingError):
        kvq.quantize_head(kvq.HeadConfig(quantizer=kvq.Quantizer("asym", 3)), np.ones((2, 20), np.float32))
    assert issubclass(errors.BadArgumentError, kvq.KvqError)


def test_inputs_are_never_rounded_silently():
    x = np.ones((2, 32))
    kvq.quantize_head(kvq.HeadConfig(), x)  # float64 that fp32 holds exactly: accepted
    x[0, 0] = 0.1
    with pytest.raises(ValueError, match="not exactly an fp32"):
        kvq.quantize_head(kvq.HeadConfig(), x)
    with pytest.raises(ValueError, match="shape"):
        kvq.quantize_head(kvq.HeadConfig(), np.ones(32, np.float32))


def test_qtensor_from_arrays_round_trip(golden):
    case = golden["keys_online_asym4_b16_d128"]
    ref = case.reference_tensor()
    again = kvq.QTensor.from_arrays(role="keys", scheme="asym", bits=4, n_tokens=ref.n_tokens, head_dim=ref.head_dim,
                                    key_mode="online", group_size=16, **{k: v for k, v in ref.arrays().items()
                                                                         if k != "fp16_slot"})
    assert again.dequantize().tobytes() == ref.dequantize().tobytes()


def test_packing_and_outliers(golden):
    case = golden["pack_3bit_d64"]
    assert kvq.pack_codes(case.array("codes"), 3).tobytes() == case.expected("packed").tobytes()
    np.testing.assert_array_equal(kvq.unpack_codes(case.expected("packed"), 64, 3), case.array("codes"))
    # S7.1 (spec 1.2.0): each tail ceil(25000 * 100 / 2e6) = ceil(1.25) = 2, so 4 in all.
    assert kvq.outlier_count(100, 25000) == (4, 2, 2)
    case = golden["outlier_selection_ties"]
    for row, ppm in enumerate(case.params["outlier_ppm_per_row"]):
        np.testing.assert_array_equal(kvq.select_outliers(case.array("x")[row], ppm), case.expected("is_outlier")[row])
