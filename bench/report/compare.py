"""Paired comparison of two solvers on the same cells: mean difference, 95% CI, Wilcoxon p."""

from __future__ import annotations

import pandas as pd

from bench.outputs import safe_name
from bench.report.frame import BLOCK, PAIR, PER_IMAGE_METRICS
from bench.report.stats import mean_std_ci, wilcoxon_p

COLUMNS = [
    *BLOCK,
    *("metric", "a", "b", "n_pairs", "mean_a", "mean_b", "mean_diff"),
    *("ci95", "ci95_low", "ci95_high", "wilcoxon_p"),
]


def parse_pair(text: str) -> tuple[str, str]:
    """'a,b' -> (a, b), splitting at the comma outside brackets ('ldps[zeta=3,eta=1],naive')."""
    depth = 0
    for i, c in enumerate(text):
        depth += {"[": 1, "]": -1}.get(c, 0)
        if c == "," and depth == 0:
            a, b = text[:i].strip(), text[i + 1 :].strip()
            if a and b:
                return a, b
    raise ValueError(f"--compare wants two solver labels 'A,B', got {text!r}")


def compare(frame: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per setting and metric: n pairs, means, mean(a - b), its paired 95% CI and Wilcoxon p."""
    labels = set(frame.solver_label.dropna())
    unknown = [x for x in (a, b) if x not in labels]
    if unknown:
        raise ValueError(f"no solver label {unknown[0]!r}; known: {', '.join(sorted(labels))}")
    ok = frame[frame.status == "ok"]
    pairs = ok[ok.solver_label == a].merge(
        ok[ok.solver_label == b], on=PAIR, suffixes=("_a", "_b"), validate="one_to_one"
    )
    rows = []
    for keys, block in pairs.groupby(BLOCK, dropna=False, sort=True):
        for m in PER_IMAGE_METRICS:
            both = block[[f"{m}_a", f"{m}_b"]].dropna()
            if both.empty:
                continue
            diff = (both[f"{m}_a"] - both[f"{m}_b"]).to_numpy()
            mean, _, ci = mean_std_ci(diff)
            rows.append(
                {
                    **dict(zip(BLOCK, keys, strict=True)),
                    "metric": m,
                    "a": a,
                    "b": b,
                    "n_pairs": len(diff),
                    "mean_a": both[f"{m}_a"].mean(),
                    "mean_b": both[f"{m}_b"].mean(),
                    "mean_diff": mean,
                    "ci95": ci,
                    "ci95_low": mean - ci,
                    "ci95_high": mean + ci,
                    "wilcoxon_p": wilcoxon_p(diff),
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def compare_filename(a: str, b: str) -> str:
    """compare_<a>_vs_<b>.csv with the labels made file-name safe."""
    return f"compare_{safe_name(a).strip('_')}_vs_{safe_name(b).strip('_')}.csv"
