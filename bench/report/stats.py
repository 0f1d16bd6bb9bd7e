"""The statistics every table uses: mean, sample std, t-interval, paired tests."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_std_ci(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, sample std, 95% t-interval half-width) of the finite values; NaN where undefined."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    if len(v) == 1:
        return float(v[0]), math.nan, math.nan
    std = float(v.std(ddof=1))
    return float(v.mean()), std, float(stats.t.ppf(0.975, len(v) - 1) * std / math.sqrt(len(v)))


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; NaN for n < 2, 1.0 when every difference is 0."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return math.nan
    if np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d).pvalue)
