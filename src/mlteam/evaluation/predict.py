"""Calling the model under evaluation: few calls, big batches, user errors named.

Per-call overhead (pipeline dispatch, input validation, a DuckDB connection for a SQL rule)
dominates on small frames, so perturbed copies of the test set are stacked and predicted in
as few calls as memory allows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlteam.core.errors import MlteamError, UserCodeError
from mlteam.evaluation.metrics import Predictions, proba_matrix, to_index

BATCH_CELLS = 10_000_000  # cells per stacked predict call (~80 MB of float64)


def _call(model: Any, method: str, X: pd.DataFrame, who: str) -> np.ndarray:
    try:
        return np.asarray(getattr(model, method)(X))
    except MlteamError:
        raise
    except Exception as exc:  # the model is user code: say whose call failed and why
        raise UserCodeError(
            f"the {who} failed in {method}() on the test rows: {type(exc).__name__}: {exc}",
            {"field": who},
        ) from exc


def raw(
    model: Any, X: pd.DataFrame, task: str, who: str, want: str = "both"
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(predict, predict_proba) of a frame; ``want`` is "both", "pred" or "proba"
    (a classifier without predict_proba gives None for it)."""
    pred = _call(model, "predict", X, who) if want in ("both", "pred") else None
    proba = None
    if task == "classification" and want in ("both", "proba"):
        if hasattr(model, "predict_proba"):
            proba = _call(model, "predict_proba", X, who)
        elif pred is None:
            pred = _call(model, "predict", X, who)
    return pred, proba


def build(
    task: str,
    labels: Sequence[Any],
    y: np.ndarray,
    model: Any,
    pred: np.ndarray | None,
    proba: np.ndarray | None,
) -> Predictions:
    """Predictions in the shared label space (``y`` already as label indices / floats)."""
    if task == "regression":
        return Predictions(task, [], y, np.asarray(pred, dtype=np.float64).ravel(), None)
    if pred is None:
        # only probabilities were asked for: the label is the most probable class
        cols = to_index(list(getattr(model, "classes_", labels)), labels)
        pred_idx = cols[np.asarray(proba).argmax(axis=1)]
    else:
        pred_idx = to_index(np.asarray(pred).ravel(), labels)
    return Predictions(
        task, list(labels), y, pred_idx, proba_matrix(model, proba, pred_idx, labels)
    )


def predict_many(
    model: Any, frames: Iterable[pd.DataFrame], task: str, who: str, want: str
) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """``raw`` for each frame, stacking frames into as few calls as ``BATCH_CELLS`` allows.
    ``frames`` may be a generator: only one batch of copies is held at a time."""
    results: list[tuple[np.ndarray | None, np.ndarray | None]] = []
    batch: list[pd.DataFrame] = []
    cells = 0

    def flush() -> None:
        nonlocal cells
        if not batch:
            return
        stacked = batch[0] if len(batch) == 1 else pd.concat(batch, ignore_index=True)
        pred, proba = raw(model, stacked, task, who, want)
        start = 0
        for f in batch:
            end = start + len(f)
            results.append(
                (
                    None if pred is None else pred[start:end],
                    None if proba is None else proba[start:end],
                )
            )
            start = end
        batch.clear()
        cells = 0

    for f in frames:
        size = f.shape[0] * max(f.shape[1], 1)
        if batch and cells + size > BATCH_CELLS:
            flush()
        batch.append(f)
        cells += size
    flush()
    return results
