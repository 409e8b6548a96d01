"""Robustness: the primary metric under noise, missing values and each feature shuffled, and
the invariances domain experts declare.

Every perturbed copy is seeded, so a rerun reproduces the figures, and each copy is predicted
exactly once (stacked with the others where the model allows).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlteam.core.errors import UserCodeError
from mlteam.evaluation.metrics import Predictions, compute, number, worse_by
from mlteam.evaluation.predict import build, predict_many, raw

NOISE_STD = 0.1  # Gaussian noise, as a fraction of each numeric feature's standard deviation
MISSING_FRACTION = 0.1  # share of feature cells set to missing
CHANGE_TOL = 1e-9  # a probability or value moving more than this is a changed prediction (rounding noise is ~1e-16)


def is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def noisy(X: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    out = X.copy()
    for f in X.columns:
        if is_numeric(X[f]):
            col = X[f].astype(np.float64)
            std = float(np.nanstd(col.to_numpy())) if col.notna().any() else 0.0
            out[f] = col + rng.normal(0.0, NOISE_STD * std, len(col))
    return out


def with_missing(X: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    out = X.copy()
    holes = rng.random(X.shape) < MISSING_FRACTION
    for j, f in enumerate(X.columns):
        col = X[f]
        if is_numeric(col) and pd.api.types.is_integer_dtype(col):
            col = col.astype(np.float64)  # an int column cannot hold NaN
        elif pd.api.types.is_bool_dtype(col):
            col = col.astype(object)
        out[f] = col.where(~holes[:, j])
    return out


def shuffled(X: pd.DataFrame, feature: str, rng: np.random.Generator) -> pd.DataFrame:
    out = X.copy()
    # through the Series, so a categorical column stays categorical (LightGBM insists)
    out[feature] = X[feature].iloc[rng.permutation(len(X))].set_axis(X.index)
    return out


def other_values(col: pd.Series) -> pd.Series:
    """Every row gets a different value of the same column (the next distinct value, cyclic),
    so the invariance is tested on every row, not only where a shuffle happens to differ."""
    uniq = pd.unique(col.dropna())
    if len(uniq) >= 2:
        codes = pd.Index(uniq).get_indexer(col)
        nxt = np.asarray(uniq, dtype=object)[(np.where(codes < 0, -1, codes) + 1) % len(uniq)]
        return pd.Series(nxt, index=col.index).astype(col.dtype, errors="ignore")
    if is_numeric(col):
        return col.fillna(0) + 1
    return col.astype(object).where(col.isna(), col.astype(str) + "_changed").fillna("changed")


def robustness(
    *,
    model: Any,
    X: pd.DataFrame,
    base: Predictions,
    primary: str,
    test: pd.DataFrame,
    invariances: Sequence[dict[str, str]],
    seed: int,
    progress: Callable[[float, str], None],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The contract's "robustness" block and the permutation feature importance."""
    task = base.task
    y = base.y
    base_value = number(compute(base, np.ones((1, len(y))), [primary])[primary][0])
    rng = np.random.default_rng(seed)
    # primary metric: probabilities suffice for ROC AUC, values for regression
    want = (
        "proba"
        if task == "classification" and primary in ("roc_auc", "pr_auc", "log_loss")
        else "pred"
    )

    def score(pred: np.ndarray | None, proba: np.ndarray | None) -> dict[str, Any]:
        p = build(task, base.labels, y, model, pred, proba)
        value = number(compute(p, np.ones((1, len(y))), [primary])[primary][0])
        return {"value": value, "drop": worse_by(primary, base_value, value)}

    def failed(exc: UserCodeError) -> dict[str, Any]:
        return {"value": None, "drop": None, "error": exc.message[:300]}

    features = list(X.columns)
    progress(0.0, f"robustness: predicting {len(features) + 1} perturbed copies")
    try:
        # a generator: copies are made batch by batch, in this order (the seeded draws follow it)
        frames = itertools.chain([noisy(X, rng)], (shuffled(X, f, rng) for f in features))
        scored = [score(*r) for r in predict_many(model, frames, task, "model", want)]
    except UserCodeError:
        # one copy the model cannot take spoils the stacked call: redo them one by one
        rng = np.random.default_rng(seed)
        scored = []
        for make in [lambda: noisy(X, rng)] + [lambda f=f: shuffled(X, f, rng) for f in features]:
            try:
                scored.append(score(*raw(model, make(), task, "model", want)))
            except UserCodeError as exc:
                scored.append(failed(exc))
    noise = scored[0]
    shuffled_scores = dict(zip(features, scored[1:], strict=True))

    progress(0.6, "robustness: missing values")
    try:
        missing = score(*raw(model, with_missing(X, rng), task, "model", want))
    except UserCodeError as exc:  # a model without imputation: say so rather than fail
        missing = failed(exc)

    progress(0.8, "robustness: invariances")
    checks = invariance_checks(model, X, test, base, invariances)
    drops = [
        d["drop"] for d in [noise, missing, *shuffled_scores.values()] if d.get("drop") is not None
    ]
    importance = sorted(
        (
            {"feature": f, "importance": s["drop"] if s["drop"] is not None else 0.0}
            for f, s in shuffled_scores.items()
        ),
        key=lambda r: -r["importance"],
    )
    block = {
        "metric": primary,
        "base": base_value,
        "noise": noise,
        "missing": missing,
        "shuffled": shuffled_scores,
        "max_drop": max(drops) if drops else None,
        "invariances": checks,
    }
    return block, importance


def _labels_from(model: Any, base: Predictions) -> str:
    """What to ask a model for on perturbed copies: its probabilities alone when its predict()
    was the most probable class on every test row (true of scikit-learn's classifiers), which
    halves the calls; otherwise both."""
    if base.task != "classification" or base.proba is None or not hasattr(model, "predict_proba"):
        return "pred" if base.task == "regression" else "both"
    return "proba" if np.array_equal(base.proba.argmax(axis=1), base.pred) else "both"


def invariance_checks(
    model: Any,
    X: pd.DataFrame,
    test: pd.DataFrame,
    base: Predictions,
    invariances: Sequence[dict[str, str]],
) -> list[dict[str, Any]]:
    """Change the declared column on every row; the share of rows whose prediction changed
    (label, or any probability / value by more than CHANGE_TOL) must be 0."""
    out: list[dict[str, Any]] = []
    frames, todo = [], []
    for inv in invariances:
        column = inv["column"]
        if column not in X.columns:
            # the model never sees a column outside its features: it cannot depend on it
            out.append(
                {
                    "name": inv["name"],
                    "column": column,
                    "changed_fraction": 0.0,
                    "passed": True,
                    "note": "not a model feature",
                }
            )
            continue
        changed = X.copy()
        changed[column] = other_values(test[column].reset_index(drop=True)).set_axis(X.index)
        frames.append(changed)
        todo.append((len(out), inv))
        out.append({})
    if frames:
        want = _labels_from(model, base)
        try:
            results = predict_many(model, frames, base.task, "model", want)
        except UserCodeError as exc:
            # the model cannot take the changed values at all: the invariance is not shown
            for slot, inv in todo:
                out[slot] = {
                    "name": inv["name"],
                    "column": inv["column"],
                    "changed_fraction": None,
                    "passed": False,
                    "error": exc.message[:300],
                }
            return out
        for (slot, inv), (pred, proba) in zip(todo, results, strict=True):
            p = build(base.task, base.labels, base.y, model, pred, proba)
            if base.task == "regression":
                moved = np.abs(p.pred - base.pred) > CHANGE_TOL * np.maximum(1.0, np.abs(base.pred))
            else:
                moved = p.pred != base.pred
                if p.proba is not None and base.proba is not None:
                    moved |= np.abs(p.proba - base.proba).max(axis=1) > CHANGE_TOL
            frac = float(moved.mean()) if len(moved) else 0.0
            out[slot] = {
                "name": inv["name"],
                "column": inv["column"],
                "changed_fraction": frac,
                "passed": frac == 0.0,
            }
    return out
