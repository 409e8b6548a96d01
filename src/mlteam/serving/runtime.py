"""Loaded models and the input check against a model's signature.

A model version is loaded once per process and kept (versions are immutable). Each model file
format has its own loader in `LOADERS`: native scikit-learn models (skops) today; an ONNX
Runtime loader is added there when training exports ONNX, and nothing else changes.

Inputs are checked value by value, column by column, before anything reaches the model, so bad
input is a 400 naming the field, never a 500. The checked input is a dict of columns in
signature order. The scikit-learn pipelines select columns by name (ColumnTransformer), which
scikit-learn supports only on a pandas DataFrame, so the sklearn loader still builds one.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlteam.core.artifacts import ArtifactStore
from mlteam.core.errors import InvalidInput
from mlteam.core.modelfiles import load_sklearn

MAX_ROWS = 100_000
Columns = dict[str, list[Any]]


def _plain(values: Any) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def _needs_frame(model: Any) -> bool:
    """Does the model select columns by name (a ColumnTransformer somewhere in a Pipeline)?"""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(model, ColumnTransformer):
        return True
    if isinstance(model, Pipeline):
        return any(_needs_frame(step) for _, step in model.steps)
    return False


def _forget_names(model: Any) -> None:
    """Drop the fitted column names of a model (and a Pipeline's steps) fed arrays from now on."""
    from sklearn.pipeline import Pipeline

    if "feature_names_in_" in vars(model):
        del model.feature_names_in_
    if isinstance(model, Pipeline):
        for _, step in model.steps:
            _forget_names(step)


def _sklearn_loader(
    store: ArtifactStore, artifact_key: str, signature: dict[str, Any]
) -> Callable[[Columns], list[Any]]:
    model = load_sklearn(store.read_bytes(f"{artifact_key}/model.skops"))
    names = [c["name"] for c in signature.get("inputs", [])]
    numeric = all(c["type"] in ("double", "long") for c in signature.get("inputs", []))
    fitted = getattr(model, "feature_names_in_", None)
    in_order = fitted is None or list(fitted) == names
    if numeric and in_order and names and not _needs_frame(model):
        # The model takes a plain 2-D array: build it straight from the checked columns, in
        # signature order, without pandas (the single-row hot path). A model fitted on a
        # DataFrame remembers its column names and would warn on every call; the names are
        # checked equal above, so that check is dropped once here.
        if fitted is not None:
            _forget_names(model)

        def predict_array(columns: Columns) -> list[Any]:
            x = np.array([columns[n] for n in names], dtype=np.float64).T
            return _plain(model.predict(x))

        return predict_array

    def predict_frame(columns: Columns) -> list[Any]:
        # scikit-learn selects columns by name only on a pandas DataFrame
        return _plain(model.predict(pd.DataFrame(columns)))

    return predict_frame


# model format → loader(store, artifact key, signature) → predict(columns) -> outputs
LOADERS: dict[
    str, Callable[[ArtifactStore, str, dict[str, Any]], Callable[[Columns], list[Any]]]
] = {
    "sklearn-skops": _sklearn_loader,
}


@dataclass
class LoadedModel:
    version_id: str
    model: str  # registered model name
    version: int
    fmt: str
    signature: dict[str, Any]
    predict_columns: Callable[[Columns], list[Any]]

    @property
    def columns(self) -> list[str]:
        return [c["name"] for c in self.signature.get("inputs", [])]

    def predict(self, columns: Columns) -> list[Any]:
        return self.predict_columns(columns)


class ModelCache:
    """Model versions loaded in this process, by version id."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def cached(self, version_id: str) -> LoadedModel | None:
        return self._models.get(version_id)

    def get(
        self,
        version_id: str,
        artifact_key: str,
        fmt: str,
        signature: dict[str, Any],
        model: str = "",
        version: int = 0,
    ) -> LoadedModel:
        loaded = self._models.get(version_id)
        if loaded is not None:
            return loaded
        with self._lock:
            if version_id not in self._models:
                loader = LOADERS.get(fmt)
                if loader is None:
                    raise InvalidInput(
                        f"model format {fmt!r} cannot be served yet (served: {sorted(LOADERS)})",
                        {"field": "format"},
                    )
                self._models[version_id] = LoadedModel(
                    version_id,
                    model,
                    version,
                    fmt,
                    signature,
                    loader(self.store, artifact_key, signature),
                )
            return self._models[version_id]


def _coerce(value: Any, kind: str, field: str) -> Any:
    t = type(value)
    if (t is float or t is int) and kind in ("double", "long"):
        return float(value)
    if value is None:
        return math.nan if kind in ("double", "long") else None
    if kind in ("double", "long"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(
                f"{field}: expected a number, got {type(value).__name__} {value!r}"[:300],
                {"field": field, "expected": kind},
            )
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise InvalidInput(
                f"{field}: expected true or false", {"field": field, "expected": kind}
            )
        return value
    if not isinstance(value, str):
        raise InvalidInput(
            f"{field}: expected a string, got {type(value).__name__}",
            {"field": field, "expected": kind},
        )
    return value


def _numbers(values: list[Any]) -> bool:
    """Every value a plain int or float (the common case, checked without a call per value)."""
    return all(type(v) is float or type(v) is int for v in values)


def _column(values: list[Any], kind: str, field: str) -> list[Any]:
    """One column's values checked (and None made NaN for numbers); errors name row `i`."""
    if kind in ("double", "long") and _numbers(values):
        return values
    return [_coerce(v, kind, f"{field}[{i}]") for i, v in enumerate(values)]


def _check_rows(n: int, field: str) -> None:
    if n == 0:
        raise InvalidInput(f"{field} must be a non-empty list of records", {"field": field})
    if n > MAX_ROWS:
        raise InvalidInput(f"{field}: at most {MAX_ROWS} rows per request", {"field": field})


def check_records(records: Any, signature: dict[str, Any], field: str = "inputs") -> Columns:
    """Validate `[{column: value}]` against the signature; the columns the model gets."""
    if not isinstance(records, list) or not records:
        raise InvalidInput(f"{field} must be a non-empty list of records", {"field": field})
    _check_rows(len(records), field)
    inputs = signature.get("inputs", [])
    columns: Columns = {c["name"]: [] for c in inputs}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InvalidInput(f"{field}[{i}] must be an object", {"field": f"{field}[{i}]"})
        for col in inputs:
            name = col["name"]
            if name not in rec:
                raise InvalidInput(
                    f"{field}[{i}]: missing column {name!r}", {"field": f"{field}[{i}].{name}"}
                )
            columns[name].append(_coerce(rec[name], col["type"], f"{field}[{i}].{name}"))
    return columns


def check_rows(rows: Any, signature: dict[str, Any], field: str = "inputs") -> Columns:
    """Validate `[[value, ...]]`, each row's values in signature column order."""
    if not isinstance(rows, list) or not rows:
        raise InvalidInput(f"{field} must be a non-empty list of rows", {"field": field})
    _check_rows(len(rows), field)
    inputs = signature.get("inputs", [])
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(inputs):
            raise InvalidInput(
                f"{field}[{i}]: expected a list of {len(inputs)} values in column order "
                f"({', '.join(c['name'] for c in inputs[:5])}{', ...' if len(inputs) > 5 else ''})",
                {"field": f"{field}[{i}]", "expected_length": len(inputs)},
            )
    return _rows_to_columns(rows, list(range(len(inputs))), signature, field)


def _rows_to_columns(
    rows: list[list[Any]], index: list[int], signature: dict[str, Any], field: str
) -> Columns:
    """Columns from rows whose value for signature column j sits at `index[j]`."""
    columns: Columns = {}
    for col, j in zip(signature.get("inputs", []), index, strict=True):
        name, kind = col["name"], col["type"]
        values = [row[j] for row in rows]
        if kind in ("double", "long") and _numbers(values):
            columns[name] = values
            continue
        columns[name] = [_coerce(v, kind, f"{field}[{i}].{name}") for i, v in enumerate(values)]
    return columns


def check_split(
    names: list[str], rows: Any, signature: dict[str, Any], field: str = "data"
) -> Columns:
    """Validate rows of values under column `names` (MLflow's dataframe_split)."""
    if not isinstance(rows, list) or not rows:
        raise InvalidInput(f"{field} must be a non-empty list of rows", {"field": field})
    _check_rows(len(rows), field)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise InvalidInput(
                f"{field}[{i}]: expected {len(names)} values", {"field": f"{field}[{i}]"}
            )
    position = {n: j for j, n in enumerate(names)}
    index = []
    for col in signature.get("inputs", []):
        if col["name"] not in position:
            raise InvalidInput(
                f"{field}: missing column {col['name']!r}", {"field": f"{field}.{col['name']}"}
            )
        index.append(position[col["name"]])
    return _rows_to_columns(rows, index, signature, field)


def check_columns(
    columns: dict[str, Any], signature: dict[str, Any], field: str = "inputs"
) -> Columns:
    """Validate `{column: [values]}` (every column the same length) against the signature."""
    if not isinstance(columns, dict):
        raise InvalidInput(f"{field} must map column names to lists", {"field": field})
    inputs = signature.get("inputs", [])
    out: Columns = {}
    n: int | None = None
    for col in inputs:
        name = col["name"]
        if name not in columns:
            raise InvalidInput(f"{field}: missing column {name!r}", {"field": f"{field}.{name}"})
        values = columns[name]
        if not isinstance(values, list):
            raise InvalidInput(
                f"{field}.{name}: expected a list of values", {"field": f"{field}.{name}"}
            )
        if n is None:
            n = len(values)
            _check_rows(n, field)
        elif len(values) != n:
            raise InvalidInput(
                f"{field}.{name}: {len(values)} values where other columns have {n}",
                {"field": f"{field}.{name}", "expected_length": n},
            )
        out[name] = _column(values, col["type"], f"{field}.{name}")
    if n is None:
        raise InvalidInput(f"{field} holds no columns", {"field": field})
    return out
