"""Drift statistics between a reference sample and what production saw.

PSI over the reference's deciles (numeric) or categories (categorical), and a test that knows
the sample size: two-sample Kolmogorov–Smirnov (numeric) or chi-square (categorical). A feature
is flagged as drifted when the test rejects "same distribution" at `ALPHA`; PSI alone is biased
upward on small windows (about bins/n), so it is reported, not used to flag. Pure functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

EPS = 1e-4
ALPHA = 0.01


def _psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    ref = np.clip(ref_share, EPS, None)
    cur = np.clip(cur_share, EPS, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def numeric_psi(ref: np.ndarray, cur: np.ndarray, bins: int = 10) -> float:
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0 if np.all(cur == edges[0]) else float("inf")
    edges[0], edges[-1] = -np.inf, np.inf
    ref_counts = np.histogram(ref, edges)[0] / len(ref)
    cur_counts = np.histogram(cur, edges)[0] / len(cur)
    return _psi(ref_counts, cur_counts)


def categorical_psi(ref: pd.Series, cur: pd.Series) -> float:
    cats = sorted(set(ref.dropna().astype(str)) | set(cur.dropna().astype(str)))
    r = ref.dropna().astype(str).value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy()
    c = cur.dropna().astype(str).value_counts(normalize=True).reindex(cats, fill_value=0).to_numpy()
    return _psi(r, c)


def categorical_pvalue(ref: pd.Series, cur: pd.Series) -> float:
    """Chi-square test of homogeneity between the two samples' category counts."""
    r = ref.dropna().astype(str).value_counts()
    c = cur.dropna().astype(str).value_counts()
    cats = sorted(set(r.index) | set(c.index))
    if len(cats) < 2:
        return 1.0
    counts = np.vstack([r.reindex(cats, fill_value=0), c.reindex(cats, fill_value=0)])
    from scipy import stats  # ~1 s to import: paid by a drift report, not by every start

    return float(stats.chi2_contingency(counts).pvalue)


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str]
) -> dict[str, Any]:
    from scipy import stats

    out: dict[str, Any] = {}
    for f in features:
        if f not in current or f not in reference:
            continue
        ref, cur = reference[f], current[f]
        if pd.api.types.is_numeric_dtype(ref) and pd.api.types.is_numeric_dtype(cur):
            r = ref.dropna().to_numpy(dtype=float)
            c = pd.to_numeric(cur, errors="coerce").dropna().to_numpy(dtype=float)
            if len(r) == 0 or len(c) == 0:
                continue
            ks = stats.ks_2samp(r, c)
            psi = numeric_psi(r, c)
            out[f] = {
                "type": "numeric",
                "psi": psi,
                "ks": float(ks.statistic),
                "p_value": float(ks.pvalue),
                "drifted": bool(ks.pvalue < ALPHA),
            }
        else:
            p_value = categorical_pvalue(ref, cur)
            out[f] = {
                "type": "categorical",
                "psi": categorical_psi(ref, cur),
                "ks": None,
                "p_value": p_value,
                "drifted": bool(p_value < ALPHA),
            }
    return out
