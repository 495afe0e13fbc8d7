"""kvq eval's configurations and page without the model: calibrated ranges leave the sinks out, the
clamp rungs reach kvq as S7.3's beyond_range, and docs/FIDELITY.md is written from a result (and a
previous one) with the numbers it is given."""
import json
from pathlib import Path

import numpy as np

import kvq
from kvq.eval import fidelity_page, ladder
from kvq.eval import model as M
from kvq.eval.cache import CacheConfig, Calibration, head_configs

MEASURED = Path(__file__).resolve().parents[2] / "docs" / "fidelity" / "eval-full.json"


def _calibration(n_tokens=64, head_dim=8, seed=3):
    rng = np.random.default_rng(seed)
    keys = [rng.standard_normal((n_tokens, head_dim)).astype(np.float32) for _ in range(M.N_LAYERS)]
    for k in keys:
        k[0, 0] = 100.0  # the first token (a sink in the configurations with one) is the largest of channel 0
    values = [rng.standard_normal((n_tokens, head_dim)).astype(np.float32) for _ in range(M.N_LAYERS)]
    return Calibration(keys, values, {})


def test_ranges_leave_the_sinks_out():
    cal = _calibration()
    with_sink_token = cal.ranges("pre", 0, sinks=0)[0]
    without = cal.ranges("pre", 0, sinks=1)[0]
    assert with_sink_token[0, 1] == 100.0
    assert without[0, 1] == np.max(cal.keys[0][1:, 0])
    # the configuration's sinks choose the ranges: the full recipe's keys are calibrated without token 0
    kcfg, _ = head_configs(ladder.full_recipe(4), 0, cal, 64)
    assert np.array_equal(kcfg.channel_range, cal.ranges("pre", ladder.ONE_PERCENT, sinks=1)[0])


def test_clamp_rungs_store_no_key_outliers():
    cal = _calibration()
    x = cal.keys[0] * 3.0  # well beyond the calibrated ranges
    by_name = {c.name: c for c in ladder.rungs(4)}
    outliers, clamp = by_name["4b-calibrated-pre"], by_name["4b-calibrated-pre-clamp"]
    full = by_name["4b-calibrated-pre-kmeans-1%-sink-clamp-full"]
    assert clamp.beyond_range == "clamp" and full.range_ppm() == 0 and full.outliers == ladder.ONE_PERCENT
    k_out, _ = head_configs(outliers, 0, cal, len(x))
    k_clamp, v_clamp = head_configs(clamp, 0, cal, len(x))
    assert k_clamp.beyond_range == "clamp" and v_clamp.beyond_range == "outliers"
    assert kvq.quantize_head(k_out, x).n_outliers > 0
    assert kvq.quantize_head(k_clamp, x).n_outliers == 0


def _row(name, bits, ppl, kl, fp32=14.0):
    return {"name": name, "label": name, "bits": bits, "ppl": ppl, "ppl_delta": ppl / fp32 - 1.0,
            "ppl_delta_se": 0.006, "kl": kl, "kl_se": kl / 10, "top1": 0.9, "key_error": 0.05,
            "value_error": 0.1, "attention_error": 0.09, "key_outliers": 0.01, "value_outliers": 0.015,
            "kvq_check_ratio": 0.001, "seconds": 1.0}


def test_page_from_results(tmp_path, monkeypatch):
    stats = json.loads(MEASURED.read_text())["kv_statistics"]
    monkeypatch.setattr(fidelity_page, "generator_statistics", lambda profile: stats)  # S14 has its own tests
    rows = [_row("4b-calibrated-pre", 4, 14.5, 0.04), _row("4b-calibrated-pre-clamp", 4, 15.4, 0.05),
            _row("4b-calibrated-pre-kmeans-1%-sink", 4, 14.2, 0.011)]
    result = {"results": rows, "fp32_ppl": 14.0, "n_tokens": 512, "eval_text": "/e", "calibration_tokens": 512,
              "calibration_text": "/c", "fisher": False, "model": "m", "reader": "r", "kvq_version": "1",
              "spec_version": "1.2.0", "seconds": 60.0, "kmeans_iterations": 25, "kv_statistics": stats}
    previous = dict(result, spec_version="1.1.0", results=[dict(r, kl=r["kl"] * 1.5) for r in rows[:1]])
    page = fidelity_page.write_page(result, tmp_path, previous, Path("old.json")).read_text()
    assert "| `4b-calibrated-pre-clamp` 4b-calibrated-pre-clamp | 15.400 | +10.00% ± 0.60 |" in page
    # clamping (+10% against +3.57%, standard errors 0.6) clears the noise and KL agrees: it hurts
    assert "| keys clamped to the full range instead of outliers beyond it (uniform) | x1.062*, KL +0.0100 |" in page
    assert "Hurts: keys clamped to the full range instead of outliers beyond it (uniform)." in page
    assert "KL is lower in 1 of the 1 configurations of both runs (median ratio 0.667)" in page
    assert "2 + 2 of each value row of 256 (1.56%)" in page and "3 + 3 of the 511 calibration keys" in page
    assert (tmp_path / "fidelity" / "kl-4bit.svg").exists()
