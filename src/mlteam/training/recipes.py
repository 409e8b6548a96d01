"""What a training job fits: a non-ML baseline and model candidates, each a scikit-learn pipeline.

Kept free of the database so recipes can be unit-tested and shipped to pool or Ray workers:
everything here is a plain function of frames and parameters, deterministic by seed.

Candidates (request names → run names):
- "baseline": majority class / mean ("baseline_majority" / "baseline_mean"), or the team's SQL
  rule ("baseline_rule", a `RuleModel` run by DuckDB);
- "linear": LogisticRegression / Ridge on imputed, scaled numerics and one-hot categoricals;
- "random_forest" and "lightgbm": the same without scaling (trees don't need it; LightGBM also
  handles missing numerics itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
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
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlteam.core.errors import InvalidInput

MAX_CLASSES = 50
CANDIDATES = ("baseline", "linear", "random_forest", "lightgbm")
MIN_ROWS = 10
MIN_TRAIN = 10


@dataclass
class Candidate:
    name: str
    kind: str  # "baseline" or "model"
    estimator: Any
    params: dict[str, Any]
    family: str = "baseline"  # one of CANDIDATES
    extra: dict[str, Any] = field(default_factory=dict)


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
    if len(df) < MIN_ROWS:
        raise InvalidInput(
            f"too few rows to train and test: {len(df)} (need {MIN_ROWS})", {"field": "rows"}
        )


def check_task(y: pd.Series, target: str, task: str) -> None:
    """A regression needs a numeric target; a classification a manageable number of classes."""
    if task == "regression" and (
        not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y)
    ):
        raise InvalidInput(
            f"task 'regression' needs a numeric target; {target!r} holds {y.dtype} values",
            {"field": "task"},
        )
    if task == "classification" and y.nunique() > MAX_CLASSES * 4:
        raise InvalidInput(
            f"target {target!r} has {y.nunique()} distinct values: too many classes for a "
            f"classification (at most {MAX_CLASSES * 4}); did you mean task 'regression'?",
            {"field": "task"},
        )


def check_parts(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    target: str,
    task: str,
    cv: int,
) -> None:
    """Each part must be usable: train at least MIN_TRAIN rows (and two per fold), validation
    and test at least two each, two classes in train."""
    sizes = {"train": len(train), "validation": len(validation), "test": len(test)}
    need_train = max(MIN_TRAIN, 2 * cv)
    if sizes["train"] < need_train or sizes["validation"] < 2 or sizes["test"] < 2:
        raise InvalidInput(
            f"too few rows for the split: train={sizes['train']}, "
            f"validation={sizes['validation']}, test={sizes['test']} "
            f"(need train >= {need_train}, validation >= 2, test >= 2)",
            {"field": "rows", "parts": sizes},
        )
    if task == "classification" and train[target].nunique() < 2:
        raise InvalidInput(
            f"the train part holds one class of {target!r} only", {"field": "target"}
        )


def _numeric(df: pd.DataFrame, features: list[str]) -> list[str]:
    return [
        f
        for f in features
        if pd.api.types.is_numeric_dtype(df[f]) and not pd.api.types.is_bool_dtype(df[f])
    ]


def preprocessor(
    df: pd.DataFrame, features: list[str], family: str = "linear"
) -> ColumnTransformer:
    """Imputation and one-hot encoding; scaling only for the linear model; LightGBM takes
    numerics as they are (it handles missing values itself)."""
    numeric = _numeric(df, features)
    categorical = [f for f in features if f not in numeric]
    if family == "lightgbm":
        num: Any = "passthrough"
    elif family == "linear":
        num = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    else:
        num = Pipeline([("impute", SimpleImputer(strategy="median"))])
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(("num", num, numeric))
    if categorical:
        onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        # Impute categoricals only when the training rows have gaps: the ONNX converters
        # cannot impute strings from NaN, so a model without gaps stays exportable (at
        # prediction time a missing category is then simply an unknown one: all zeros).
        if df[categorical].isna().any().any():
            cat: Any = Pipeline(
                [("impute", SimpleImputer(strategy="most_frequent")), ("onehot", onehot)]
            )
        else:
            cat = onehot
        parts.append(("cat", cat, categorical))
    return ColumnTransformer(parts)


def run_name(family: str, task: str, rule: bool = False) -> str:
    if family == "baseline":
        if rule:
            return "baseline_rule"
        return "baseline_majority" if task == "classification" else "baseline_mean"
    if family == "linear":
        return "logistic_regression" if task == "classification" else "ridge"
    return family


def default_params(family: str, task: str) -> dict[str, Any]:
    if family == "baseline":
        return {"strategy": "most_frequent" if task == "classification" else "mean"}
    if family == "linear":
        return {"C": 1.0, "max_iter": 2000} if task == "classification" else {"alpha": 1.0}
    if family == "random_forest":
        return {"n_estimators": 100, "max_depth": None, "min_samples_leaf": 1, "max_features": 1.0}
    if family == "lightgbm":
        return {}  # the library's defaults (what bench/training.py compares against)
    raise InvalidInput(f"unknown candidate {family!r}", {"field": "candidates"})


def suggest(family: str, task: str, trial: Any) -> dict[str, Any]:
    """Optuna search space per candidate (the baseline has none)."""
    if family == "linear":
        if task == "classification":
            return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True), "max_iter": 2000}
        return {"alpha": trial.suggest_float("alpha", 1e-3, 1e3, log=True)}
    if family == "random_forest":
        return {
            "n_estimators": trial.suggest_int("n_estimators", 20, 200, step=10),
            "max_depth": trial.suggest_int("max_depth", 2, 16),
            "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 20),
            "max_features": trial.suggest_float("max_features", 0.2, 1.0),
        }
    if family == "lightgbm":
        return {
            "n_estimators": trial.suggest_int("n_estimators", 20, 300, step=10),
            "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 64),
            "min_child_samples": trial.suggest_int("min_child_samples", 2, 50),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 10.0, log=True),
        }
    return {}


def estimator(
    family: str, task: str, params: dict[str, Any], seed: int, n_jobs: int | None = None
) -> Any:
    clf = task == "classification"
    if family == "baseline":
        return DummyClassifier(**params) if clf else DummyRegressor(**params)
    if family == "linear":
        return LogisticRegression(**params) if clf else Ridge(**params, random_state=seed)
    if family == "random_forest":
        cls = RandomForestClassifier if clf else RandomForestRegressor
        return cls(**params, random_state=seed, n_jobs=n_jobs)
    if family == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        cls = LGBMClassifier if clf else LGBMRegressor
        extra = {"n_jobs": n_jobs} if n_jobs is not None else {}
        return cls(**params, random_state=seed, verbose=-1, **extra)
    raise InvalidInput(f"unknown candidate {family!r}", {"field": "candidates"})


def pipeline(
    family: str,
    task: str,
    df: pd.DataFrame,
    features: list[str],
    params: dict[str, Any],
    seed: int,
    n_jobs: int | None = None,
) -> Pipeline:
    return Pipeline(
        [
            ("pre", preprocessor(df, features, family)),
            ("model", estimator(family, task, params, seed, n_jobs)),
        ]
    )


def candidates(task: str, df: pd.DataFrame, features: list[str], seed: int) -> list[Candidate]:
    """The untuned baseline and linear candidates (kept for callers of the first version)."""
    return [
        Candidate(
            run_name(f, task),
            "baseline" if f == "baseline" else "model",
            pipeline(f, task, df, features, default_params(f, task), seed),
            default_params(f, task),
            f,
        )
        for f in ("baseline", "linear")
    ]


def split_frame(
    df: pd.DataFrame, target: str, task: str, test_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train / validation / test, deterministic by seed: `test_fraction` of the rows for test,
    the same number again for validation, the rest for train (stratified when every class
    has enough rows)."""

    def strat(frame: pd.DataFrame) -> pd.Series | None:
        if task != "classification":
            return None
        counts = frame[target].value_counts()
        return frame[target] if len(counts) > 1 and counts.min() >= 2 else None

    rest, test = train_test_split(
        df, test_size=test_fraction, random_state=seed, stratify=strat(df)
    )
    n_val = len(test)
    if n_val >= len(rest):
        return rest.iloc[:0], rest.iloc[:0], test
    train, validation = train_test_split(
        rest, test_size=n_val, random_state=seed, stratify=strat(rest)
    )
    return train, validation, test


def split(
    df: pd.DataFrame, target: str, task: str, test_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test of the first version (train+validation of `split_frame` as train)."""
    train, validation, test = split_frame(df, target, task, test_fraction, seed)
    return pd.concat([train, validation]), test


PRIMARY = {"classification": ("accuracy", True), "regression": ("rmse", False)}


def score(task: str, y: Any, pred: Any) -> float:
    """The task's primary metric, for tuning."""
    if task == "classification":
        return float(accuracy_score(y, pred))
    return float(root_mean_squared_error(y, pred))


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


def better(task: str, a: dict[str, float], b: dict[str, float]) -> bool:
    """Is metric set `a` better than `b` on the task's primary metric?"""
    key, higher = PRIMARY[task]
    return bool(a[key] > b[key]) if higher else bool(a[key] < b[key])


def folds(task: str, y: pd.Series, cv: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds, stratified when every class has `cv` rows; shuffled by seed."""
    if task == "classification" and y.value_counts().min() >= cv:
        splitter: Any = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=cv, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def cv_trial(
    family: str,
    task: str,
    params: dict[str, Any],
    frame: pd.DataFrame,
    features: list[str],
    target: str,
    cv: int,
    seed: int,
    n_jobs: int | None,
    thresholds: list[float | None],
) -> dict[str, Any]:
    """Cross-validate one parameter set. After each fold the running mean is the trial's
    intermediate value; it stops early (pruned) when that is worse than `thresholds[fold]`
    (the median of earlier trials at that fold, fixed before the trial started, so pruning is
    the same however many workers run and in whatever order they finish)."""
    _, higher = PRIMARY[task]
    X, y = frame[features], frame[target]
    values: list[float] = []
    scores: list[float] = []
    for i, (tr, va) in enumerate(folds(task, y, cv, seed)):
        model = pipeline(family, task, frame, features, params, seed, n_jobs)
        model.fit(X.iloc[tr], y.iloc[tr])
        scores.append(score(task, y.iloc[va], model.predict(X.iloc[va])))
        values.append(float(np.mean(scores)))
        limit = thresholds[i] if i < len(thresholds) else None
        if limit is not None and i < cv - 1:
            worse = values[-1] < limit if higher else values[-1] > limit
            if worse:
                return {"values": values, "pruned": True}
    return {"values": values, "pruned": False}


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
