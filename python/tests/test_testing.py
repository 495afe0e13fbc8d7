"""kvq.testing: the judges accept the reference's outputs and reject broken ones with the
diagnostics of kvq conform (field, element, got/expected, ulps, rule)."""
import numpy as np
import pytest

import kvq
import kvq.testing as T
from kvq import _lib as L


def _outputs(case):
    return {f.label: f.load() for f in case.files.values() if f.cls in ("exact", "boundary", "bounded")}


def test_every_golden_kernel_case_passes_with_its_own_outputs(golden):
    judged = 0
    for case in golden:
        if case.is_backend_operation:
            j = T.judge_case(case, _outputs(case))
            assert j, j.report()
            judged += 1
    assert judged == len(golden.select(operation=kvq.golden.BACKEND_OPERATIONS))
    with pytest.raises(ValueError, match="reference-only"):
        T.judge_case(golden["fp16_narrow"], {})


def test_class_e_parameter(golden):
    case = golden["values_asym4_d128"]
    out = _outputs(case)
    out["q_params"][2, 0] ^= 1
    j = T.judge_case(case, out)
    assert not j and j.field == "q_params" and j.index == 2 and "token 2" in j.where
    assert "class E" in j.detail and "0x0001" in j.got
    with pytest.raises(T.ConformanceError, match="q_params"):
        T.check_case(case, out)


def test_class_e_floats_report_ulps():
    a = np.float32([1, 2, 3])
    b = a.copy()
    b[1] = np.nextafter(np.float32(2), np.float32(3))
    j = T.judge_exact(b, a, "decoded")
    assert not j and j.index == 1 and j.ulps == 1 and "0x40000001" in j.got
    assert T.judge_exact(a, a)
    c = a.copy()
    c[0] = -0.0 if a[0] == 0 else a[0]
    assert T.judge_exact(np.float32([-0.0]), np.float32([0.0])).passed is False  # bits, not ==


def _boundary_element(case, accepted):
    """An element whose code can move down by one step: within S12.2's window (accepted) or not."""
    qt = case.reference_tensor()
    x = case.array("x")
    codes = qt.unpacked_codes()
    q = L.Quantizer(int(qt.scheme), qt.bits, None)
    params = qt.params
    for t in range(qt.n_tokens):
        for c in range(qt.head_dim):
            k = int(codes[t, c])
            if k == 0:
                continue
            p = L.GroupParams(*[int(v) for v in params[t]])
            ok = bool(L.lib.kvq_code_accepted(q, p, float(x[t, c]), k, k - 1))
            if ok == accepted:
                return t, c
    raise AssertionError("no such element")


@pytest.mark.parametrize("accepted", [True, False])
def test_class_b_codes(golden, accepted):
    case = golden["uniform_asym_4bit"]
    t, c = _boundary_element(case, accepted)
    out = _outputs(case)
    out["codes"] = out["codes"].copy()
    out["codes"][t, c] -= 1
    qt = case.reference_tensor()
    moved = kvq.QTensor.from_arrays(role="values", scheme="asym", bits=4, n_tokens=48, head_dim=32,
                                    precision=np.zeros(48, np.uint8), params=out["params"], group_size=32,
                                    codes=kvq.pack_codes(out["codes"], 4))
    out["decoded"] = moved.dequantize()
    j = T.judge_case(case, out)
    if accepted:
        assert j and j.boundary_accepted == 1, j.report()
    else:
        assert not j and j.field == "codes" and j.index == t * 32 + c and "S12.2" in j.detail
    assert bool(T.judge_qtensor(moved, qt, case.array("x"), prefix=None)) == accepted


def test_class_a_attention_bound_and_pairing_hint(golden):
    case = golden["attention_d128_n300_half_gqa4"]
    keys, values = case.reference_tensors()
    q, pos, positions = case.array("q"), case.params["q_position"], case.array("positions")
    bound = case.expected("bound")
    out = case.expected("out").copy()
    out[1, 5] += 3 * bound[1, 5]
    j = T.judge_case(case, {"out": out})
    assert not j and j.field == "out" and j.index == 128 + 5 and "query head 1, channel 5" in j.where
    assert "class A" in j.detail and j.worst_ratio >= 2.9
    interleaved = kvq.attention_decode(keys, values, q, pos, positions, kvq.Rope("interleaved", 10000))
    j = T.judge_attention(interleaved, keys, values, q, pos, positions, case.rope())
    assert not j and "RoPE pairing interleaved" in j.detail
    ok = T.judge_attention(case.expected("out"), keys, values, q, pos, positions, case.rope())
    assert ok and ok.worst_ratio == 0.0
    with pytest.raises(ValueError, match="profile"):
        T.judge_attention(out, keys, values, q, pos, positions, case.rope(), profile="fp8")
    # S12.4: the fp16 profile's bound is the golden bound_fp16, and admits an error the fp32 one rejects.
    b16 = kvq.attention_error_bound(keys, values, q, pos, positions, case.rope(), profile="fp16")
    assert (b16 == case.expected("bound_fp16")).all()
    nudged = case.expected("out").copy()
    nudged[0, 0] += 0.5 * b16[0, 0]
    assert T.judge_attention(nudged, keys, values, q, pos, positions, case.rope(), profile="fp16")
    assert not T.judge_attention(nudged, keys, values, q, pos, positions, case.rope())


def test_missing_and_misshapen_outputs(golden):
    case = golden["keys_calibrated_asym4_d128"]
    out = _outputs(case)
    del out["q_codes"]
    j = T.judge_case(case, out)
    assert not j and j.field == "missing outputs" and "q_codes" in j.detail
    out = _outputs(case)
    out["q_codes"] = out["q_codes"][:-1]
    assert not T.judge_case(case, out)


def test_a_qtensor_can_stand_for_the_arrays(golden):
    case = golden["keys_online_nuq4_b32_d256"]
    assert T.judge_case(case, {"q": case.reference_tensor()})


def test_torch_tensors_are_accepted(golden):
    torch = pytest.importorskip("torch")
    case = golden["attention_d64_n1"]
    assert T.judge_case(case, {"out": torch.from_numpy(case.expected("out"))})
