"""Fairness across the groups of one sensitive column, computed by fairlearn itself.

fairlearn's parity measures are defined for a binary decision, so each task is reduced to one:
binary classification uses the positive class (classes_[1]); multiclass takes, per class, "was
this class predicted" and reports the class with the largest demographic parity gap; regression
uses "prediction above the median prediction" (and truth above the median truth). Equalized
odds is reported for binary classification only.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, mean_absolute_error, root_mean_squared_error

from mlteam.evaluation.metrics import Predictions, number
from mlteam.evaluation.slices import MISSING


def sensitive_groups(values: pd.Series) -> np.ndarray:
    return values.reset_index(drop=True).astype(object).map(
        lambda v: MISSING if pd.isna(v) else str(v)
    ).to_numpy()


def decisions(p: Predictions) -> tuple[np.ndarray, np.ndarray, str | None]:
    """The binary (truth, decision) pair fairlearn's parity measures look at, and the label
    whose selection it is (None for regression)."""
    if p.task == "regression":
        return (p.y > np.median(p.y)).astype(int), (p.pred > np.median(p.pred)).astype(int), None
    if p.binary:
        return (p.y == 1).astype(int), (p.pred == 1).astype(int), str(p.labels[1])
    raise ValueError("multiclass decisions depend on the class; see fairness()")


def fairness(p: Predictions, sensitive: pd.Series, column: str) -> dict[str, Any]:
    groups = sensitive_groups(sensitive)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if p.task == "classification" and not p.binary:
            # the class whose selection differs most between groups
            best: tuple[float, int] = (-1.0, 0)
            for c in range(len(p.labels)):
                chosen = (p.pred == c).astype(int)
                gap = demographic_parity_difference(
                    (p.y == c).astype(int), chosen, sensitive_features=groups
                )
                if gap > best[0]:
                    best = (float(gap), c)
            c = best[1]
            y_b, d_b, positive = (p.y == c).astype(int), (p.pred == c).astype(int), str(p.labels[c])
        else:
            y_b, d_b, positive = decisions(p)
        dp = demographic_parity_difference(y_b, d_b, sensitive_features=groups)
        eo = (
            equalized_odds_difference(y_b, d_b, sensitive_features=groups) if p.binary else None
        )
        if p.task == "classification":
            frame = MetricFrame(
                metrics={"accuracy": accuracy_score},
                y_true=p.y,
                y_pred=p.pred,
                sensitive_features=groups,
            )
            per_group = frame.by_group
            if p.binary:
                rates = MetricFrame(
                    metrics={
                        "true_positive_rate": true_positive_rate,
                        "false_positive_rate": false_positive_rate,
                    },
                    y_true=y_b,
                    y_pred=d_b,
                    sensitive_features=groups,
                ).by_group
                per_group = per_group.join(rates)
        else:
            per_group = MetricFrame(
                metrics={"mae": mean_absolute_error, "rmse": root_mean_squared_error},
                y_true=p.y,
                y_pred=p.pred,
                sensitive_features=groups,
            ).by_group
        sel = MetricFrame(
            metrics=selection_rate, y_true=y_b, y_pred=d_b, sensitive_features=groups
        ).by_group
    counts = pd.Series(groups).value_counts()
    out_groups = []
    for g in per_group.index:
        out_groups.append(
            {
                "group": str(g),
                "rows": int(counts.get(g, 0)),
                "metrics": {k: number(v) for k, v in per_group.loc[g].items()},
                "selection_rate": number(sel.loc[g]),
            }
        )
    return {
        "column": column,
        "positive": positive,
        "groups": out_groups,
        "demographic_parity_difference": number(dp),
        "equalized_odds_difference": number(eo) if eo is not None else None,
    }
