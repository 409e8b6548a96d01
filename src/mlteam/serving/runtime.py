"""Loaded models and the input check against a model's signature.

A model version is loaded once per process and kept; inputs are checked value by value before
anything reaches the model, so bad input is a 400 naming the field, never a 500.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlteam.core.artifacts import ArtifactStore
from mlteam.core.errors import InvalidInput
from mlteam.core.modelfiles import load_sklearn


@dataclass
class LoadedModel:
    version_id: str
    model: Any
    signature: dict[str, Any]

    @property
    def columns(self) -> list[str]:
        return [c["name"] for c in self.signature.get("inputs", [])]

    def predict(self, frame: pd.DataFrame) -> list[Any]:
        out = self.model.predict(frame[self.columns])
        return [v.item() if isinstance(v, np.generic) else v for v in out]


class ModelCache:
    def __init__(self, store: ArtifactStore) -> None:
        self.store = store
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def get(
        self, version_id: str, artifact_key: str, fmt: str, signature: dict[str, Any]
    ) -> LoadedModel:
        loaded = self._models.get(version_id)
        if loaded is not None:
            return loaded
        with self._lock:
            if version_id not in self._models:
                if fmt != "sklearn-skops":
                    raise InvalidInput(f"model format {fmt!r} cannot be served yet")
                model = load_sklearn(self.store.read_bytes(f"{artifact_key}/model.skops"))
                self._models[version_id] = LoadedModel(version_id, model, signature)
            return self._models[version_id]


def _coerce(value: Any, kind: str, field: str) -> Any:
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


def check_records(records: Any, signature: dict[str, Any]) -> pd.DataFrame:
    """Validate `[{column: value}]` against the signature; the frame the model gets."""
    if not isinstance(records, list) or not records:
        raise InvalidInput("inputs must be a non-empty list of records", {"field": "inputs"})
    inputs = signature.get("inputs", [])
    columns: dict[str, list[Any]] = {c["name"]: [] for c in inputs}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InvalidInput(f"inputs[{i}] must be an object", {"field": f"inputs[{i}]"})
        for col in inputs:
            name = col["name"]
            if name not in rec:
                raise InvalidInput(
                    f"inputs[{i}]: missing column {name!r}", {"field": f"inputs[{i}].{name}"}
                )
            columns[name].append(_coerce(rec[name], col["type"], f"inputs[{i}].{name}"))
    return pd.DataFrame(columns)
