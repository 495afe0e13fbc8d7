"""Command line of ``python -m kvq eval`` (docs/FIDELITY.md)."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import List, Optional

from . import ladder

# The 4-bit full recipe's tolerances in the smoke (512 tokens of GPL-3, calibrated on 512 of GPL-2).
# The smoke is deterministic, so these are regression tolerances, not noise bounds: measured value
# plus a margin that changes which should not cost accuracy stay inside. Measured under spec 1.2.0
# (sinks left out of the key ranges): perplexity +1.23% (standard error 0.73 over its 511 tokens;
# 8 windows of 512 tokens of GPL-3 gave -0.06% .. +2.40%, sd 0.72) and KL 0.01068 nats/token
# (8 windows: 0.0086 .. 0.0107). Accuracy-neutral changes moved this window by up to +0.63 points
# and +12% KL (spec 1.1.0's outlier counts -> 1.2.0's: +0.83% -> +1.46%, KL 0.01041 -> 0.01164,
# while the mean KL over the 8 windows fell 9%). Margins: 0.77 points (one standard error, above
# that +0.63) and +17% KL (above that +12%). What they catch: no value outliers gives KL 0.0228,
# one per tail instead of two 0.0130 (the perplexity check alone would pass both: +1.21%, +1.94%).
# KVQuant's goal of 0.5% at 4 bits is not met (docs/FIDELITY.md).
FULL4_PPL_TOLERANCE = 0.02
FULL4_KL_TOLERANCE = 0.0125

CHECKS_DOC = f"""orderings --check asserts (they hold on the real model, docs/FIDELITY.md):
  per-token keys are far worse than per-channel keys: perplexity of 3b-token-post > 2x 3b-calibrated-post
  pre-RoPE beats post-RoPE with calibrated keys: 3b-calibrated-pre < 3b-calibrated-post (perplexity and KL)
  the 4-bit full recipe is within {100 * FULL4_PPL_TOLERANCE:g}% of the unquantized perplexity and its KL below
  {FULL4_KL_TOLERANCE} nats/token (regression tolerances over the smoke's measured +1.23% and 0.0107; KVQuant's
  goal of 0.5% is not met)"""


def check(result: dict) -> List[str]:
    """The orderings that hold on real data; returns the failures (empty when all hold)."""
    r = {x["name"]: x for x in result["results"]}
    problems = []

    def need(*names: str) -> bool:
        missing = [n for n in names if n not in r]
        if missing:
            problems.append(f"configurations missing for the checks: {', '.join(missing)}")
        return not missing

    if need("3b-token-post", "3b-calibrated-post"):
        a, b = r["3b-token-post"]["ppl"], r["3b-calibrated-post"]["ppl"]
        if not a > 2 * b:
            problems.append(f"per-token keys {a:.3f} are not far worse than per-channel {b:.3f}")
    if need("3b-calibrated-pre", "3b-calibrated-post"):
        pre, post = r["3b-calibrated-pre"], r["3b-calibrated-post"]
        if not (pre["ppl"] < post["ppl"] and pre["kl"] < post["kl"]):
            problems.append(f"pre-RoPE ({pre['ppl']:.3f}, KL {pre['kl']:.4f}) is not better than post-RoPE "
                            f"({post['ppl']:.3f}, KL {post['kl']:.4f})")
    full = ladder.full_recipe(4).name
    if need(full):
        d, kl = r[full]["ppl_delta"], r[full]["kl"]
        if not d < FULL4_PPL_TOLERANCE:
            problems.append(f"4-bit full recipe is {100 * d:+.2f}% from the unquantized cache "
                            f"(more than {100 * FULL4_PPL_TOLERANCE:g}%)")
        if not kl < FULL4_KL_TOLERANCE:
            problems.append(f"4-bit full recipe's KL is {kl:.5f} nats/token (not below {FULL4_KL_TOLERANCE})")
    for x in result["results"]:
        ratio = x["kvq_check_ratio"]
        if not (math.isnan(ratio) or ratio <= 1.0):
            problems.append(f"{x['name']}: numpy attention differs from kvq_attention_decode by {ratio:.3g} "
                            f"times S12.3's bound")
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kvq eval", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Gemma 3 270M (pinned PyPI package) in numpy, its KV cache through kvq "
                                            "at every layer: perplexity, KL divergence, K/V and attention errors.",
                                epilog=CHECKS_DOC)
    p.add_argument("--ladder", default="smoke", help="smoke (CI), full (2/3/4 bits), or 2, 3, 4 (one width)")
    p.add_argument("--tokens", type=int, default=None, help="tokens of the evaluation text (smoke 512, else 1024)")
    p.add_argument("--calibration-tokens", type=int, default=None, help="tokens of the calibration text "
                   "(default: as --tokens)")
    p.add_argument("--fisher", action="store_true", help="Fisher-weighted k-means from jax gradients")
    p.add_argument("--kmeans-iterations", type=int, default=25, metavar="N",
                   help="at most N Lloyd iterations per codebook (S6.6's default 25; about 400 converge here)")
    p.add_argument("--compare", type=Path, metavar="JSON", help="with --report: also compare every configuration "
                   "with an earlier run's --json (docs/fidelity/eval-full-spec-1.1.0.json: spec 1.1.0's counts)")
    p.add_argument("--json", type=Path, help="write the results as JSON")
    p.add_argument("--report", type=Path, metavar="DIR", help="write FIDELITY.md and its plots into DIR "
                   "(docs/ for the repository's page; plots under DIR/fidelity/)")
    p.add_argument("--from-json", type=Path, help="no model run: make the report from an earlier --json")
    p.add_argument("--check", action="store_true", help="exit 1 unless the orderings below hold")
    p.add_argument("--no-install", action="store_true", help="fail instead of pip-installing the pinned packages")
    p.add_argument("--export", type=Path, metavar="DIR", help="no evaluation: write the model's unquantized cache "
                   "(gemma3-kv.kvt), its last queries (gemma3-queries.kvt), the calibration text's cache "
                   "(gemma3-calibration.kvt) and the layers' RoPE bases into DIR for the kvq tool "
                   "(docs/LEARN.md); --tokens defaults to 512 (the sliding window)")
    a = p.parse_args(argv)

    if a.export is not None:
        from .export import export

        tokens = a.tokens or 512
        export(a.export, tokens, a.calibration_tokens or tokens, install=not a.no_install)
        return 0

    if a.from_json is not None:
        result = json.loads(a.from_json.read_text())
    else:
        from . import run

        configs = (ladder.smoke() if a.ladder == "smoke" else ladder.full_ladder() if a.ladder == "full"
                   else ladder.rungs(int(a.ladder)))
        tokens = a.tokens or (512 if a.ladder == "smoke" else 1024)
        result = run.run(configs, tokens, a.calibration_tokens or tokens, a.fisher, install=not a.no_install,
                         kmeans_iterations=a.kmeans_iterations)
        result["ladder"] = a.ladder
    if a.json is not None:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1, allow_nan=True) + "\n")
    if a.report is not None:
        from .fidelity_page import write_page

        previous = json.loads(a.compare.read_text()) if a.compare is not None else None
        write_page(result, a.report, previous, a.compare)
    status = 0
    if a.check:
        problems = check(result)
        for problem in problems:
            print(f"eval: check failed: {problem}", file=sys.stderr)
        print(f"eval: {len(problems)} of the orderings failed" if problems else "eval: orderings hold")
        status = 1 if problems else 0
    return status
