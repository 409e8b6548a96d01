"""What a training job fits: a non-ML baseline and a scikit-learn candidate, same preprocessing.

Kept free of the database so recipes can be unit-tested and, later, shipped to Ray workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlteam.core.errors import InvalidInput

MAX_CLASSES = 50


@dataclass
class Candidate:
    name: str
    kind: str  # "baseline" or "model"
    estimator: Any
    params: dict[str, Any]


def infer_task(y: pd.Series) -> str:
    if y.dtype == object or str(y.dtype) in ("string", "str", "bool", "category"):
        return "classification"
    if pd.api.types.is_integer_dtype(y) and y.nunique() <= min(MAX_CLASSES, max(2, len(y) // 10)):
        return "classification"
    return "regression"


def check_training_frame(df: pd.DataFrame, target: str, features: list[str]) -> None:
    """Refuse data no model can learn from, naming what is wrong."""
    if target not in df.columns:
        raise InvalidInput(f"target column {target!r} not found", {"field": "target"})
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise InvalidInput(f"feature columns not found: {missing}", {"field": "features"})
    y = df[target]
    if y.isna().all():
        raise InvalidInput(f"target column {target!r} is empty", {"field": "target"})
    if y.nunique(dropna=True) < 2:
        raise InvalidInput(f"target column {target!r} is constant", {"field": "target"})
    all_null = [f for f in features if df[f].isna().all()]
    if all_null:
        raise InvalidInput(f"feature columns with only nulls: {all_null}", {"field": "features"})
    if len(df) < 10:
        raise InvalidInput(
            f"too few rows to train and test: {len(df)} (need 10)", {"field": "rows"}
        )


def preprocessor(df: pd.DataFrame, features: list[str]) -> ColumnTransformer:
    numeric = [f for f in features if pd.api.types.is_numeric_dtype(df[f]) and df[f].dtype != bool]
    categorical = [f for f in features if f not in numeric]
    return ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), numeric),
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                categorical,
            ),
        ]
    )


def candidates(task: str, df: pd.DataFrame, features: list[str], seed: int) -> list[Candidate]:
    pre = preprocessor(df, features)
    if task == "classification":
        return [
            Candidate(
                "baseline_majority",
                "baseline",
                Pipeline([("pre", pre), ("model", DummyClassifier(strategy="most_frequent"))]),
                {"strategy": "most_frequent"},
            ),
            Candidate(
                "logistic_regression",
                "model",
                Pipeline([("pre", pre), ("model", LogisticRegression(max_iter=2000, C=1.0))]),
                {"C": 1.0, "max_iter": 2000},
            ),
        ]
    return [
        Candidate(
            "baseline_mean",
            "baseline",
            Pipeline([("pre", pre), ("model", DummyRegressor(strategy="mean"))]),
            {"strategy": "mean"},
        ),
        Candidate(
            "ridge",
            "model",
            Pipeline([("pre", pre), ("model", Ridge(alpha=1.0, random_state=seed))]),
            {"alpha": 1.0},
        ),
    ]


def split(
    df: pd.DataFrame, target: str, task: str, test_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    stratify = (
        df[target] if task == "classification" and df[target].value_counts().min() >= 2 else None
    )
    return train_test_split(df, test_size=test_fraction, random_state=seed, stratify=stratify)


def evaluate(task: str, model: Any, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    pred = model.predict(X)
    if task == "regression":
        return {
            "mae": float(mean_absolute_error(y, pred)),
            "rmse": float(root_mean_squared_error(y, pred)),
            "r2": float(r2_score(y, pred)),
        }
    metrics = {
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0)),
    }
    classes = getattr(model, "classes_", None)
    if classes is not None and len(classes) == 2:
        proba = model.predict_proba(X)[:, 1]
        metrics["roc_auc"] = (
            float(roc_auc_score(y == classes[1], proba)) if y.nunique() == 2 else float("nan")
        )
    return metrics


PRIMARY = {"classification": ("accuracy", True), "regression": ("rmse", False)}


def better(task: str, a: dict[str, float], b: dict[str, float]) -> bool:
    """Is metric set `a` better than `b` on the task's primary metric?"""
    key, higher = PRIMARY[task]
    return bool(a[key] > b[key]) if higher else bool(a[key] < b[key])


def signature(df: pd.DataFrame, features: list[str], target: str, task: str) -> dict[str, Any]:
    def kind(s: pd.Series) -> str:
        if pd.api.types.is_bool_dtype(s):
            return "boolean"
        if pd.api.types.is_integer_dtype(s):
            return "long"
        if pd.api.types.is_float_dtype(s):
            return "double"
        return "string"

    out = {"name": target, "type": kind(df[target])}
    if task == "classification":
        out["classes"] = [
            c.item() if isinstance(c, np.generic) else c
            for c in sorted(df[target].dropna().unique())
        ]
    return {
        "inputs": [{"name": f, "type": kind(df[f])} for f in features],
        "output": out,
        "task": task,
    }
