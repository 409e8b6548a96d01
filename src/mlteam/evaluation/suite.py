"""The evaluation suite: one call from a fitted model and held-out rows to the full report.

Pure computation — no database, no web framework — so the evaluation service can run it in a
job and tests can run it on a toy dataset. The report's shape is the contract in
notes/contracts.md ("Evaluation report"); every number in it is a plain float or None, so it
survives ``json.dumps(..., allow_nan=False)``.

Speed: the model, baseline and champion are each predicted once on the test rows; all bootstrap
resamples reuse those predictions through a weight matrix (see metrics.py); the perturbed
copies for robustness are stacked into as few predict calls as memory allows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlteam.core.errors import InvalidInput
from mlteam.evaluation import value as bv
from mlteam.evaluation.fairness import fairness
from mlteam.evaluation.leakage import leakage
from mlteam.evaluation.metrics import (
    HIGHER_IS_BETTER,
    PRIMARY,
    Predictions,
    bootstrap_weights,
    compute,
    confusion_matrix,
    curves,
    interval,
    label_space,
    number,
    to_index,
)
from mlteam.evaluation.predict import build, raw
from mlteam.evaluation.robustness import robustness
from mlteam.evaluation.slices import slice_metrics

__all__ = ["HIGHER_IS_BETTER", "PRIMARY", "TASKS", "run_suite"]

TASKS = ("classification", "regression")
MAX_BOOTSTRAP = 10_000


def _validate(
    task: str,
    test: Any,
    target: str,
    features: Sequence[str],
    train: Any,
    slice_columns: Sequence[str],
    sensitive: str | None,
    invariances: Sequence[dict],
    bootstrap: int,
) -> None:
    """Refuse bad input up front, naming the field, before any model is called."""
    if task not in TASKS:
        raise InvalidInput(f"task must be one of {list(TASKS)}, not {task!r}", {"field": "task"})
    if not isinstance(test, pd.DataFrame):
        raise InvalidInput("test must be a pandas DataFrame", {"field": "test"})
    if target not in test.columns:
        raise InvalidInput(f"target column {target!r} is not in the test rows", {"field": "target"})
    if len(test) == 0 or test[target].notna().sum() == 0:
        raise InvalidInput("the test set has no rows with a target value", {"field": "test"})
    features = list(features)
    if not features:
        raise InvalidInput("no features given", {"field": "features"})
    missing = [f for f in features if f not in test.columns]
    if missing:
        raise InvalidInput(
            f"feature columns not in the test rows: {missing}", {"field": "features"}
        )
    if target in features:
        raise InvalidInput(f"the target {target!r} is listed as a feature", {"field": "features"})
    if train is not None:
        if not isinstance(train, pd.DataFrame):
            raise InvalidInput("train must be a pandas DataFrame", {"field": "train"})
        absent = [f for f in features if f not in train.columns]
        if absent:
            raise InvalidInput(
                f"feature columns not in the training rows: {absent}", {"field": "train"}
            )
    if isinstance(slice_columns, str):
        raise InvalidInput(
            "slice_columns must be a list of column names", {"field": "slice_columns"}
        )
    bad = [c for c in slice_columns if c not in test.columns]
    if bad:
        raise InvalidInput(f"slice columns not in the test rows: {bad}", {"field": "slice_columns"})
    if sensitive is not None and sensitive not in test.columns:
        raise InvalidInput(
            f"sensitive column {sensitive!r} is not in the test rows", {"field": "sensitive"}
        )
    for i, inv in enumerate(invariances):
        if not isinstance(inv, dict) or not isinstance(inv.get("column"), str):
            raise InvalidInput(
                f'invariances[{i}] must be {{"name": ..., "column": ...}}', {"field": "invariances"}
            )
        if inv["column"] not in test.columns:
            raise InvalidInput(
                f"invariance {inv.get('name') or i!r}: column {inv['column']!r} is not in the test rows",
                {"field": "invariances"},
            )
    if (
        isinstance(bootstrap, bool)
        or not isinstance(bootstrap, int)
        or not 0 <= bootstrap <= MAX_BOOTSTRAP
    ):
        raise InvalidInput(
            f"bootstrap must be an integer from 0 to {MAX_BOOTSTRAP}", {"field": "bootstrap"}
        )


def _metric_block(
    point: dict[str, np.ndarray], boots: dict[str, list[np.ndarray]]
) -> dict[str, dict[str, float | None]]:
    out = {}
    for name, v in point.items():
        lo, hi = interval(np.concatenate(boots[name])) if boots.get(name) else (None, None)
        out[name] = {"value": number(v[0]), "ci_low": number(lo), "ci_high": number(hi)}
    return out


def run_suite(
    task: str,
    model: Any,
    test: pd.DataFrame,
    target: str,
    features: list[str],
    *,
    train: pd.DataFrame | None = None,
    baseline: Any | None = None,
    champion: Any | None = None,
    champion_version: int | None = None,
    value_matrix: dict | None = None,
    slice_columns: Sequence[str] = (),
    sensitive: str | None = None,
    invariances: Sequence[dict] = (),
    bootstrap: int = 200,
    seed: int = 0,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``test`` and return the report (contracts.md, "Evaluation report").

    ``model``, ``baseline`` and ``champion`` take ``test[features]`` in ``predict`` (and
    ``predict_proba`` / ``classes_`` for classifiers). Rows without a target value are left
    out. ``progress(fraction, message)`` is called between stages. Raises InvalidInput naming
    the field for bad input, UserCodeError when a model's own predict fails.
    """
    _validate(task, test, target, features, train, slice_columns, sensitive, invariances, bootstrap)
    say = progress or (lambda _f, _m: None)
    features = list(features)
    invariances = [
        {"name": str(i.get("name") or i["column"]), "column": i["column"]} for i in invariances
    ]
    test = test[test[target].notna()].reset_index(drop=True)
    X = test[features]
    n = len(test)
    primary = PRIMARY[task]

    say(0.02, "predicting the test rows")
    comparators = {"model": model, "baseline": baseline, "champion": champion}
    outputs = {who: raw(m, X, task, who) for who, m in comparators.items() if m is not None}
    if task == "classification":
        predicted = [v for who in outputs for v in pd.unique(np.asarray(outputs[who][0]).ravel())]
        labels = label_space(
            test[target], [m for m in comparators.values() if m is not None], predicted
        )
        y = to_index(test[target].to_numpy(), labels)
    else:
        labels = []
        y = pd.to_numeric(test[target], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(y).any():
            raise InvalidInput(f"target column {target!r} is not numeric", {"field": "target"})
    preds: dict[str, Predictions] = {
        who: build(task, labels, y, comparators[who], *outputs[who]) for who in outputs
    }
    spec, unit = bv.parse_value_matrix(task, labels, value_matrix)
    values = {who: bv.row_values(p, spec) for who, p in preds.items()}
    diffs = {
        name: values[a] - values[b]
        for name, a, b in (
            ("vs_baseline", "model", "baseline"),
            ("vs_champion", "model", "champion"),
            ("champion_vs_baseline", "champion", "baseline"),
        )
        if a in values and b in values
    }

    say(0.1, f"metrics with {bootstrap} bootstrap resamples")
    ones = np.ones((1, n))
    point = {who: compute(p, ones) for who, p in preds.items()}
    boots: dict[str, dict[str, list[np.ndarray]]] = {who: {} for who in preds}
    diff_boot: dict[str, list[np.ndarray]] = {k: [] for k in diffs}
    for W in bootstrap_weights(n, bootstrap, seed):
        total = W.sum(axis=1)
        for who, p in preds.items():
            for name, v in compute(p, W).items():
                boots[who].setdefault(name, []).append(v)
        for k, d in diffs.items():
            diff_boot[k].append(W @ d / total * 1000.0)
    blocks = {who: _metric_block(point[who], boots[who]) for who in preds}
    base = preds["model"]

    say(0.3, "slices and fairness")
    slices = slice_metrics(base, test, list(slice_columns), primary)
    fair = fairness(base, test[sensitive], sensitive) if sensitive is not None else None

    say(0.4, "robustness")
    robust, importance = robustness(
        model=model,
        X=X,
        base=base,
        primary=primary,
        test=test,
        invariances=invariances,
        seed=seed,
        progress=lambda f, m: say(0.4 + 0.4 * f, m),
    )

    say(0.85, "leakage")
    leaks = leakage(test, train, features, base, seed)

    say(0.95, "business value")
    compared = {
        k: bv.paired(d, np.concatenate(diff_boot[k]) if diff_boot[k] else np.array([]))
        for k, d in diffs.items()
    }
    per_1000 = {
        who: (float(values[who].mean()) * 1000.0 if who in values else None)
        for who in ("model", "baseline", "champion")
    }
    decision = bv.decide(
        unit,
        per_1000,
        compared.get("vs_baseline"),
        compared.get("vs_champion"),
        compared.get("champion_vs_baseline"),
        champion_version,
    )
    report = {
        "task": task,
        "target": target,
        "rows": n,
        "primary_metric": primary,
        "metrics": blocks["model"],
        "confusion_matrix": confusion_matrix(base),
        "baseline": {"metrics": blocks["baseline"]} if "baseline" in blocks else None,
        "champion": (
            {"version": champion_version, "metrics": blocks["champion"]}
            if "champion" in blocks
            else None
        ),
        "slices": slices,
        "worst_slices": slices[:5],
        "fairness": fair,
        "robustness": robust,
        "leakage": leaks,
        "business_value": {
            "unit": unit,
            "per_1000": per_1000,
            "vs_baseline": compared.get("vs_baseline"),
            "vs_champion": compared.get("vs_champion"),
            **decision,
        },
        "feature_importance": importance,
        "curves": curves(base),
    }
    say(1.0, "done")
    return report
