"""docs/FIDELITY.md's tables and SVG plots, from the JSON that ``python -m kvq eval`` writes."""
from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Dict, List, Sequence

# Numbers quoted in issue 15 (measured outside the project, same model, 1,024 tokens of GPL-3).
QUOTED = {"fp32": 14.41, "3b-token-post": 851, "3b-channel-post": 17.3, "3b-channel-pre": 16.1,
          "3b-full": 15.70, "3b-best": 15.02, "4b-best": 14.51, "2b-best": 17.6}
QUOTED_STATS = {"key_outlier_channels": 9, "key_kurtosis": 0.14, "key_ppm_beyond_6_sigma": 4,
                "key_mean_energy": 0.71, "key_first_token_norm": 0.83, "value_first_token_norm": 0.22}
QUOTED_SYNTH = {"key_outlier_channels": 37.5, "key_kurtosis": 59, "key_ppm_beyond_6_sigma": 1440,
                "key_mean_energy": 0.25, "key_first_token_norm": 8, "value_first_token_norm": None}


def _fmt(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}g}"


def _pm(value: str, se, fmt: str) -> str:
    """value with its standard error, when the results have one (older JSON does not)."""
    return value if se is None else f"{value} ± {fmt.format(se)}"


def results_table(results: Sequence[dict]) -> str:
    lines = ["| configuration | perplexity | vs fp32 (± 1 SE) | KL (nats/token, ± 1 SE) | top-1 kept | K error | V error | "
             "attention error | key outliers | value outliers | kvq check |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        se = r.get("ppl_delta_se")
        delta = _pm(f"{100 * r['ppl_delta']:+.2f}%", None if se is None else 100 * se, "{:.2f}")
        kl = _pm(f"{r['kl']:.4f}", r.get("kl_se"), "{:.4f}")
        lines.append(f"| `{r['name']}` {escape(r['label'])} | {r['ppl']:.3f} | {delta} | {kl} | "
                     f"{100 * r['top1']:.1f}% | {r['key_error']:.4f} | {r['value_error']:.4f} | "
                     f"{r['attention_error']:.4f} | {100 * r['key_outliers']:.2f}% | {100 * r['value_outliers']:.2f}% | "
                     f"{_fmt(r['kvq_check_ratio'], 2)} |")
    return "\n".join(lines)


def _by_name(results: Sequence[dict]) -> Dict[str, dict]:
    return {r["name"]: r for r in results}


def best(results: Sequence[dict], bits: int, key: str = "ppl") -> dict:
    return min((r for r in results if r["bits"] == bits), key=lambda r: r[key])


def bar_chart(path: Path, title: str, results: Sequence[dict], key: str, unit: str, log: bool,
              reference: float = None) -> None:
    """A horizontal bar chart, one bar per configuration, as a standalone SVG."""
    rows = list(results)
    label_w, bar_w, row_h, top = 360, 420, 18, 46
    width, height = label_w + bar_w + 90, top + row_h * len(rows) + 40
    values = [r[key] for r in rows]
    lo = min(v for v in values if v > 0) if log else 0.0
    hi = max(values + ([reference] if reference else []))
    if log:  # start below the smallest bar (and the reference) so that every bar shows
        lo = min(lo, reference or lo) / (1.05 if reference else 2.0)

    def x(v: float) -> float:
        if log:
            return label_w + bar_w * (math.log(max(v, lo)) - math.log(lo)) / (math.log(hi * 1.05) - math.log(lo))
        return label_w + bar_w * v / (hi * 1.05)

    colours = {2: "#c0504d", 3: "#4f81bd", 4: "#9bbb59"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="DejaVu Sans, sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
           f'<text x="10" y="36" fill="#555">{escape(unit)}{" (log scale)" if log else ""}</text>']
    for i, r in enumerate(rows):
        y = top + i * row_h
        out.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{escape(r["name"])}</text>')
        out.append(f'<rect x="{label_w}" y="{y + 2}" width="{max(x(r[key]) - label_w, 1):.1f}" height="{row_h - 5}" '
                   f'fill="{colours.get(r["bits"], "#888")}"/>')
        out.append(f'<text x="{x(r[key]) + 4:.1f}" y="{y + 12}">{_fmt(r[key], 4)}</text>')
    if reference:
        rx = x(reference)
        out.append(f'<line x1="{rx:.1f}" y1="{top - 4}" x2="{rx:.1f}" y2="{top + row_h * len(rows)}" '
                   f'stroke="black" stroke-dasharray="4,3"/>')
        out.append(f'<text x="{rx + 3:.1f}" y="{top + row_h * len(rows) + 14}">fp32 cache {reference:.3f}</text>')
    legend_y = height - 10
    present = sorted({r["bits"] for r in rows})
    for j, (bits, colour) in enumerate((b, colours.get(b, "#888")) for b in present):
        out.append(f'<rect x="{10 + 70 * j}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{24 + 70 * j}" y="{legend_y}">{bits}-bit</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def statistics_table(real: dict, realistic: dict, stress: dict) -> str:
    names = [("key_outlier_channels", "key outlier channels per head (RMS > 6x median)", "{:.1f}"),
             ("key_kurtosis", "key excess kurtosis within a channel (median)", "{:.3g}"),
             ("key_ppm_beyond_6_sigma", "key elements beyond 6 sigma (ppm)", "{:.3g}"),
             ("key_mean_energy", "key energy in the per-channel means", "{:.0%}"),
             ("key_first_token_norm", "first token's key norm / median", "{:.2f}"),
             ("value_first_token_norm", "first token's value norm / median", "{:.2f}")]
    lines = ["| statistic | Gemma 3 270M (kvq eval) | issue 15 (real) | S14.6 realistic | S14.3 stress | issue 15 (synth) |",
             "|---|---:|---:|---:|---:|---:|"]
    for key, title, f in names:
        q = QUOTED_STATS[key]
        qs = QUOTED_SYNTH[key]
        lines.append(f"| {title} | {f.format(real[key])} | {f.format(q)} | {f.format(realistic[key])} | "
                     f"{f.format(stress[key])} | {'-' if qs is None else f.format(qs)} |")
    return "\n".join(lines)
