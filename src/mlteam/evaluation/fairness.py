"""Fairness across the groups of one sensitive column, computed by fairlearn itself.

fairlearn's parity measures are defined for a binary decision, so each task is reduced to one:
binary classification uses the positive class (classes_[1]); multiclass takes, per class, "was
this class predicted" and reports the class with the largest demographic parity gap
("positive"); regression uses "prediction above the median prediction". Equalized odds is
reported for binary classification only (None otherwise).
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, mean_absolute_error, root_mean_squared_error

from mlteam.evaluation.metrics import Predictions, number
from mlteam.evaluation.slices import MISSING


def sensitive_groups(values: pd.Series) -> np.ndarray:
    return (
        values.reset_index(drop=True)
        .astype(object)
        .map(lambda v: MISSING if pd.isna(v) else str(v))
        .to_numpy()
    )


def _above_median_rate(_y_true: Any, y_pred: Any, cut: float) -> float:
    return float(np.mean(np.asarray(y_pred) > cut))


def fairness(p: Predictions, sensitive: pd.Series, column: str) -> dict[str, Any]:
    """Per-group metrics and selection rates from one fairlearn MetricFrame; the parity
    differences are that frame's between-group differences, exactly what fairlearn's
    demographic_parity_difference / equalized_odds_difference compute (the tests check it)."""
    groups = sensitive_groups(sensitive)
    metrics: dict[str, Any]
    positive: str | None
    if p.task == "regression":
        cut = float(np.median(p.pred))
        metrics = {
            "mae": mean_absolute_error,
            "rmse": root_mean_squared_error,
            "selection_rate": partial(_above_median_rate, cut=cut),
        }
        y_true, y_pred, positive = p.y, p.pred, None
    elif p.binary:
        # label indices: 1 is the positive class (classes_[1]), fairlearn's default pos_label
        metrics = {
            "accuracy": accuracy_score,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
            "selection_rate": selection_rate,
        }
        y_true, y_pred, positive = (
            (p.y == 1).astype(int),
            (p.pred == 1).astype(int),
            str(p.labels[1]),
        )
    else:
        # the class whose selection rate differs most between groups
        table = pd.crosstab(groups, p.pred, normalize="index")
        gaps = table.max(axis=0) - table.min(axis=0)
        c = int(gaps.idxmax()) if len(gaps) else 0
        metrics = {
            "accuracy": accuracy_score,
            "selection_rate": partial(selection_rate, pos_label=c),
        }
        y_true, y_pred, positive = p.y, p.pred, str(p.labels[c]) if p.labels else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = MetricFrame(
            metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=groups
        )
        gaps = frame.difference(method="between_groups")
    eo = (
        max(float(gaps["true_positive_rate"]), float(gaps["false_positive_rate"]))
        if p.binary
        else None
    )
    counts = pd.Series(groups).value_counts()
    by_group = frame.by_group
    out_groups = [
        {
            "group": str(g),
            "rows": int(counts.get(g, 0)),
            "metrics": {k: number(v) for k, v in by_group.loc[g].items() if k != "selection_rate"},
            "selection_rate": number(by_group.loc[g, "selection_rate"]),
        }
        for g in by_group.index
    ]
    return {
        "column": column,
        "positive": positive,
        "groups": out_groups,
        "demographic_parity_difference": number(gaps["selection_rate"]),
        "equalized_odds_difference": number(eo) if eo is not None else None,
    }
