"""Leakage: test rows also in the training set, and features that alone give the target away.

A single-feature score is measured on (at most ``SAMPLE`` of) the test rows:
binary classification with a numeric feature → balanced accuracy of the best single threshold
on the raw value (one cut, so it cannot overfit); anything else → a depth-limited tree on that
one feature, 2-fold cross-validated (categoricals as codes), scored by balanced accuracy
(classification) or R² (regression; for a numeric feature the larger of that and the absolute
Spearman correlation, which catches a monotone copy of the target on few rows). A score of at least ``THRESHOLD`` marks the feature a
suspect: no honest feature predicts the target that well on its own. (Balanced accuracy, not
ROC AUC: strong honest features reach an AUC of 0.98; they do not classify 98% right alone.)
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, r2_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from mlteam.evaluation.metrics import Predictions, number
from mlteam.evaluation.robustness import is_numeric

THRESHOLD = 0.98
SAMPLE = 20_000
TREE_DEPTH = {"classification": 4, "regression": 6}


def row_hashes(df: pd.DataFrame) -> np.ndarray:
    """One 64-bit hash per row of values, numbers as float64 so 3 and 3.0 hash alike."""
    norm = pd.DataFrame(
        {
            c: (df[c].astype(np.float64) if is_numeric(df[c]) else df[c].astype(object).map(str))
            for c in df.columns
        }
    )
    return pd.util.hash_pandas_object(norm, index=False).to_numpy()


def shared_rows(
    train: pd.DataFrame | None, test: pd.DataFrame, features: list[str]
) -> dict[str, Any]:
    if train is None or len(test) == 0:
        return {"shared_rows": 0, "shared_fraction": 0.0, "train_checked": False}
    seen = np.unique(row_hashes(train[features]))
    hits = int(np.isin(row_hashes(test[features]), seen).sum())
    return {"shared_rows": hits, "shared_fraction": hits / len(test), "train_checked": True}


def single_feature_scores(
    test: pd.DataFrame, features: list[str], base: Predictions, seed: int
) -> list[dict[str, Any]]:
    y = base.y
    frame = test[features]
    if len(frame) > SAMPLE:
        keep = np.random.default_rng(seed).choice(len(frame), SAMPLE, replace=False)
        frame, y = frame.iloc[keep], y[keep]
    ok = (y >= 0) if base.task == "classification" else np.isfinite(y)
    frame, y = frame[ok], y[ok]
    out = []
    for f in features:
        out.append({"feature": f, "score": number(_score(frame[f], y, base, seed))})
    out.sort(key=lambda r: -(r["score"] if r["score"] is not None else -1.0))
    return out


def _score(col: pd.Series, y: np.ndarray, base: Predictions, seed: int) -> float | None:
    if len(y) < 4 or (base.task == "classification" and len(np.unique(y)) < 2):
        return None
    numeric = is_numeric(col)
    if numeric:
        x = col.astype(np.float64).to_numpy()
    else:
        x = pd.factorize(
            col.astype(object).map(lambda v: None if pd.isna(v) else str(v)), sort=True
        )[0].astype(np.float64)
        x[x < 0] = np.nan
    if base.binary and numeric:
        return best_cut(x, y == 1)
    cv = KFold(2, shuffle=True, random_state=seed)
    X = x.reshape(-1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if base.task == "regression":
            tree = DecisionTreeRegressor(
                max_depth=TREE_DEPTH["regression"], min_samples_leaf=5, random_state=seed
            )
            r2 = max(0.0, float(r2_score(y, cross_val_predict(tree, X, y, cv=cv))))
            # a step function needs many rows to fit a copy of a continuous target closely;
            # a rank correlation sees any monotone copy at once
            rho = abs(float(stats.spearmanr(x, y, nan_policy="omit").statistic)) if numeric else 0.0
            return max(r2, rho if np.isfinite(rho) else 0.0)
        tree = DecisionTreeClassifier(
            max_depth=TREE_DEPTH["classification"], min_samples_leaf=5, random_state=seed
        )
        return float(balanced_accuracy_score(y, cross_val_predict(tree, X, y, cv=cv)))


def best_cut(x: np.ndarray, positive: np.ndarray) -> float:
    """Balanced accuracy of the best rule "x above (or below) a threshold" (missing values
    taken as lowest), found with one sort and running counts."""
    filled = np.where(np.isnan(x), np.nanmin(x) - 1 if np.isfinite(x).any() else 0.0, x)
    order = np.argsort(filled, kind="mergesort")
    s, pos = filled[order], positive[order].astype(np.float64)
    P, N = pos.sum(), len(pos) - pos.sum()
    if P == 0 or N == 0:
        return 1.0
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # cut after each distinct value
    pos_below = np.cumsum(pos)[ends]
    neg_below = (ends + 1) - pos_below
    # rule "positive when above the cut": recall of positives and of negatives
    above = ((P - pos_below) / P + neg_below / N) / 2
    return float(max(above.max(), (1 - above).max(), 0.5))


def leakage(
    test: pd.DataFrame,
    train: pd.DataFrame | None,
    features: list[str],
    base: Predictions,
    seed: int,
) -> dict[str, Any]:
    scores = single_feature_scores(test, features, base, seed)
    return {
        **shared_rows(train, test, features),
        "single_feature": scores,
        "suspects": [
            s["feature"] for s in scores if s["score"] is not None and s["score"] >= THRESHOLD
        ],
    }
