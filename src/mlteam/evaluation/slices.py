"""Metrics per slice of the test set (a value, or a quantile bin of a numeric column)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mlteam.evaluation.metrics import HIGHER_IS_BETTER, Predictions, compute, number

MAX_VALUES = 20  # more distinct values than this: numeric columns are binned, others lumped
BINS = 5
MIN_ROWS = 10  # smaller slices are listed, but ranked after the others: their metrics are noise
MISSING = "(missing)"
OTHER = "(other)"


def groups(values: pd.Series) -> list[tuple[str, np.ndarray]]:
    """(slice name, row mask) pairs: one per value, quantile bins for a numeric column with
    many values, the most frequent values plus "(other)" for a wide categorical one."""
    s = values.reset_index(drop=True)
    numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
    if numeric and s.nunique(dropna=True) > MAX_VALUES:
        binned = pd.qcut(s, BINS, duplicates="drop")
        keys = binned.astype(str).where(binned.notna(), MISSING)
        order = [str(iv) for iv in binned.cat.categories]
    else:
        keys = s.astype(object).map(lambda v: MISSING if pd.isna(v) else str(v))
        counts = keys.value_counts()
        if len(counts) > MAX_VALUES:
            top = set(counts.index[: MAX_VALUES - 1])
            keys = keys.where(keys.isin(top), OTHER)
        order = list(keys.value_counts().index)
    if (keys == MISSING).any() and MISSING not in order:
        order.append(MISSING)
    arr = keys.to_numpy()
    out = [(name, arr == name) for name in order]
    return [(name, mask) for name, mask in out if mask.any()]


def slice_metrics(
    p: Predictions, test: pd.DataFrame, columns: Sequence[str], primary: str
) -> list[dict[str, Any]]:
    """One entry per slice of every column, worst first by the primary metric; slices under
    MIN_ROWS rows, and those where the metric is undefined (e.g. a single class), come after."""
    rows: list[dict[str, Any]] = []
    for column in columns:
        parts = groups(test[column])
        if not parts:
            continue
        membership = np.vstack([mask for _, mask in parts]).astype(np.float64)
        values = compute(p, membership)
        for i, (name, mask) in enumerate(parts):
            rows.append(
                {
                    "column": column,
                    "slice": name,
                    "rows": int(mask.sum()),
                    "metrics": {m: number(v[i]) for m, v in values.items()},
                }
            )
    higher = HIGHER_IS_BETTER.get(primary, True)

    def badness(row: dict[str, Any]) -> tuple[int, float]:
        v = row["metrics"].get(primary)
        if v is None:
            return (2, 0.0)
        return (0 if row["rows"] >= MIN_ROWS else 1, v if higher else -v)

    rows.sort(key=badness)
    return rows
