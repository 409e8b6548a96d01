"""Drift statistics between a reference sample and what production saw.

PSI over the reference's deciles (numeric) or categories (categorical), and the two-sample
Kolmogorov–Smirnov test (scipy) for numeric features. Pure functions: no database here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

EPS = 1e-4
PSI_ALERT = 0.2  # the usual rule of thumb: < 0.1 stable, 0.1–0.2 moderate, > 0.2 shifted


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


def feature_drift(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str]
) -> dict[str, Any]:
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
                "ks_pvalue": float(ks.pvalue),
                "drifted": bool(psi > PSI_ALERT or ks.pvalue < 0.01),
            }
        else:
            psi = categorical_psi(ref, cur)
            out[f] = {
                "type": "categorical",
                "psi": psi,
                "ks": None,
                "ks_pvalue": None,
                "drifted": bool(psi > PSI_ALERT),
            }
    return out
