"""S14.6: the realistic profile matches the statistics measured on the real model (the JSON that
`python -m kvq eval` wrote for docs/FIDELITY.md) within a factor of 2; the stress profile does not."""
import json
from pathlib import Path

import numpy as np
import pytest

import kvq
from kvq import kvstats

MEASURED = Path(__file__).resolve().parents[2] / "docs" / "fidelity" / "eval-full.json"
CHECKED = ("key_outlier_channels", "key_kurtosis", "key_ppm_beyond_6_sigma", "key_mean_energy",
           "key_first_token_norm", "value_first_token_norm")


def _profile(profile, **params):
    ks, vs = [], []
    for s in range(18):  # the model's shape: 18 layers of one KV head, 1,024 tokens, head_dim 256
        k, v, _ = kvq.synth_kv(1024, 256, 1000 + s, profile=profile, **params)
        ks.append(k)
        vs.append(v)
    return kvstats.measure(np.stack(ks), np.stack(vs), 256).as_dict()


@pytest.fixture(scope="module")
def measured():
    return json.loads(MEASURED.read_text())["kv_statistics"]


def test_realistic_profile_within_a_factor_of_two(measured):
    got = _profile("realistic", n_outlier_channels=10, tail_probability=8e-6)
    for key in CHECKED:
        ratio = got[key] / measured[key]
        assert 0.5 <= ratio <= 2.0, f"{key}: realistic {got[key]:.4g}, model {measured[key]:.4g}"
    assert got["key_outlier_channels_low_frequency"] == 1.0  # all at the lowest-frequency pairs (S14.6 step 2)


def test_stress_profile_is_far_from_the_model(measured):
    got = _profile("stress")
    far = [k for k in CHECKED if not 0.5 <= got[k] / measured[k] <= 2.0]
    assert {"key_kurtosis", "key_ppm_beyond_6_sigma", "key_mean_energy", "key_first_token_norm"} <= set(far)


def test_statistics_of_known_data():
    rng = np.random.default_rng(0)
    k = rng.normal(size=(4, 4096, 64)).astype(np.float32)
    k[:, :, 5] *= 10.0  # one outlier channel
    k[:, :, 7] += 3.0   # a channel mean
    s = kvstats.measure(k, k, 64)
    assert s.key_outlier_channels == 1.0 and abs(s.key_kurtosis) < 0.2
    assert s.key_ppm_beyond_6_sigma < 5
    np.testing.assert_allclose(s.key_mean_energy, 9 / (64 + 99 + 9), rtol=0.05)
