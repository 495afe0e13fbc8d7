"""The pytest plugin: a kernel test runs once per golden case, and a broken kernel fails with the
diagnostic of kvq conform."""

KERNEL_TESTS = '''
import numpy as np
import pytest
import kvq, kvq.testing

def my_attention(keys, values, q, q_position, positions, rope, broken):
    # a "kernel": dequantize, then attention in numpy (RoPE through kvq)
    k = keys.dequantize()
    if rope.pairing != "none":
        k = np.stack([kvq.rope_apply(rope, k[t], int(positions[t])) for t in range(k.shape[0])])
        q = np.stack([kvq.rope_apply(rope, qi, q_position) for qi in q])
    s = (q.astype(np.float64) @ k.T.astype(np.float64)) / np.sqrt(k.shape[1])
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    out = (p @ values.dequantize().astype(np.float64)).astype(np.float32)
    if broken:
        out[0, 0] += 0.5
    return out

@pytest.mark.kvq_golden(operation="attention_decode")
@pytest.mark.parametrize("broken", [False, BROKEN])
def test_attention(kvq_golden_case, broken):
    case = kvq_golden_case
    keys, values = case.reference_tensors()
    out = my_attention(keys, values, case.array("q"), case.params["q_position"], case.array("positions"),
                       case.rope(), broken)
    kvq.testing.check_case(case, {"out": out})

@pytest.mark.kvq_golden(operation="quantize_head", level=(0, 2))
def test_quantize_l1(kvq_golden_case):
    kvq.testing.check_case(kvq_golden_case, {"q": kvq_golden_case.reference_tensor()})
'''


def _attention_ids(golden):
    return [c.name for c in golden.select(operation="attention_decode")]


def test_plugin_parametrizes_over_golden_cases(pytester, golden):
    pytester.makepyfile(KERNEL_TESTS.replace("BROKEN", "False"))
    result = pytester.runpytest("-v")
    n = len(_attention_ids(golden))
    result.assert_outcomes(passed=2 * n + 1)
    for name in _attention_ids(golden):
        result.stdout.fnmatch_lines([f"*test_attention?{name}-False* PASSED*"])
    result.stdout.fnmatch_lines(["*test_quantize_l1?keys_online_asym3_b4_d32* PASSED*"])


def test_plugin_reports_the_conform_diagnostic(pytester, golden):
    pytester.makepyfile(KERNEL_TESTS.replace("BROKEN", "True"))
    result = pytester.runpytest("-k", "attention_d64_n1")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FAIL attention_d64_n1*", "*field:    out*", "*element:  index 0 (query head 0, channel 0)*",
                                 "*why:      class A (S12.3)*"])


def test_plugin_level_option(pytester, golden):
    pytester.makepyfile(KERNEL_TESTS.replace("BROKEN", "False"))
    # L0-L3: no attention case (L4) is left, so pytest skips the empty parametrization
    result = pytester.runpytest("--kvq-level", "3")
    result.assert_outcomes(passed=1, skipped=2)
    result = pytester.runpytest("--kvq-level", "4-4")
    result.assert_outcomes(passed=len(golden.select(operation="attention_decode")) * 2, skipped=1)
