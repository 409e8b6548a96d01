"""Loaded models and the input check against a model's signature.

A model version is loaded once per process and kept (versions are immutable). Each model file
format has its own loader in `LOADERS`, which picks the fastest runtime that gives the same
answers:

- "sklearn-skops" with an "onnx" entry in `mlteam-model.json` and a `model.onnx` file: ONNX
  Runtime (one `InferenceSession` per process, one thread per call: small requests are faster
  without a thread pool, and the server runs requests side by side anyway). Training wrote
  `model.onnx` only when its answers matched the native model's on the validation rows, so it
  is trusted to answer the same. When the ONNX file is missing, does not load, or does not match
  its meta, the version is served by the native model instead: never a failed deployment over
  an optimisation. Which runtime serves a version, and why not ONNX, is reported
  (`LoadedModel.runtime`, `.runtime_note`; the deployment and Open Inference metadata show it).
- "sklearn-skops" otherwise: the native scikit-learn model, fed a 2-D numpy array when it takes
  one (no pandas on the hot path), a DataFrame only when a ColumnTransformer selects columns by
  name (scikit-learn supports that only on a DataFrame).
- "sql-rule" (a baseline the team wrote as a SQL expression): DuckDB runs the expression over
  the request's rows (runtime "duckdb").

Inputs are checked column by column before anything reaches the model, so bad input is a 400
naming the field, never a 500. The checked input is a dict of columns in signature order, each
a list or a 1-D numpy array (the all-numbers fast path).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlteam.core import gcpolicy
from mlteam.core.artifacts import ArtifactStore
from mlteam.core.errors import InvalidInput, MlteamError
from mlteam.core.modelfiles import load_sklearn

log = logging.getLogger("mlteam.serving")

MAX_ROWS = 100_000
Columns = dict[str, Any]  # column name → list of values or 1-D numpy array


@dataclass
class Predictor:
    """What a loader gives: the predict function and the runtime behind it."""

    predict: Callable[[Columns], list[Any]]
    runtime: str  # "onnxruntime", "sklearn", ...
    note: str | None = None  # why a faster runtime is not used, if one was offered


def _plain(values: Any) -> list[Any]:
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values.tolist()  # numpy scalars become Python numbers in one call
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


def _matrix(columns: Columns, names: list[str]) -> np.ndarray:
    """The 2-D float64 array of `names`, rows by columns (from lists or arrays alike)."""
    matrix = getattr(columns, "matrix", None)
    if matrix is not None:
        return matrix
    first = columns[names[0]]
    if isinstance(first, np.ndarray):
        return np.column_stack([columns[n] for n in names]).astype(np.float64, copy=False)
    return np.array([columns[n] for n in names], dtype=np.float64).T


def _native(model: Any, signature: dict[str, Any]) -> Callable[[Columns], list[Any]]:
    """The native scikit-learn predict on checked columns (arrays when the model takes them)."""
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
            return _plain(model.predict(_matrix(columns, names)))

        return predict_array

    def predict_frame(columns: Columns) -> list[Any]:
        # scikit-learn selects columns by name only on a pandas DataFrame
        return _plain(model.predict(pd.DataFrame(columns)))

    return predict_frame


# ONNX input types of the contract (mlteam-model.json "onnx".inputs[].type) → numpy dtype
ONNX_TYPES: dict[str, Any] = {
    "float": np.float32,
    "double": np.float64,
    "int64": np.int64,
    "string": object,
}


def _onnx(
    data: bytes, spec: dict[str, Any], signature: dict[str, Any], native: Callable
) -> Callable[[Columns], list[Any]]:
    """An ONNX Runtime predict for the exported graph, checked against its meta at load.

    One input per feature, shape [N, 1], typed as the meta says; the label output is the
    answer. A request with a missing value (NaN / None) in any input, or a fraction for an
    int64 input, is answered by the native model: the export was checked on complete rows
    only, and the native model handles (or refuses) missing values as it was trained to.
    """
    import onnxruntime as ort

    # One thread per call for everyday requests: a single row gains nothing from more, and the
    # server already runs requests side by side; large ones get their own session (`_options`).
    opts = _options(ort, threads=1)
    session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
    graph_inputs = {i.name for i in session.get_inputs()}
    graph_outputs = [o.name for o in session.get_outputs()]
    features = {c["name"] for c in signature.get("inputs", [])}
    feeds: list[tuple[str, str, Any]] = []
    for i in spec.get("inputs") or []:
        kind = ONNX_TYPES.get(i.get("type"))
        if kind is None or i.get("name") not in graph_inputs or i.get("feature") not in features:
            raise ValueError(f"onnx input {i!r} does not fit the graph or the signature")
        feeds.append((i["name"], i["feature"], kind))
    if {name for name, _, _ in feeds} != graph_inputs:
        raise ValueError(f"the graph takes inputs {sorted(graph_inputs)}, the meta names others")
    label = (spec.get("outputs") or {}).get("label") or (graph_outputs[:1] or [None])[0]
    if label not in graph_outputs:
        raise ValueError(f"the graph has no output {label!r}")
    wanted = [label]
    position = {c["name"]: j for j, c in enumerate(signature.get("inputs", []))}
    kinds = {kind for _, _, kind in feeds}
    single = None
    if len(kinds) == 1 and kinds <= {np.float32, np.float64}:
        single = _one_matrix_input(data, [name for name, _, _ in feeds], kinds.pop())
    matrix_session = wide_session = None
    if single is not None:
        try:
            matrix_session = ort.InferenceSession(single, opts, providers=["CPUExecutionProvider"])
            wide = _options(ort, threads=max(1, min(4, os.cpu_count() or 1)))
            wide_session = ort.InferenceSession(single, wide, providers=["CPUExecutionProvider"])
        except Exception as err:  # served through the graph's own inputs
            log.info("ONNX graph kept with one input per feature: %s", err)
            matrix_session = wide_session = None
    if matrix_session is not None:
        dtype = feeds[0][2]
        order = [position[feature] for _, feature, _ in feeds]
        in_order = order == list(range(len(position)))

        def predict_matrix(columns: Columns) -> list[Any]:
            matrix = getattr(columns, "matrix", None)
            if matrix is None:
                matrix = np.column_stack(
                    [np.asarray(columns[feature], dtype=np.float64) for _, feature, _ in feeds]
                )
            elif not in_order:
                matrix = matrix[:, order]
            # a missing value (NaN): the native model answers, as it was trained to
            if np.isnan(matrix).any():
                return native(columns)
            x = np.ascontiguousarray(matrix, dtype=dtype)
            run = (wide_session if len(x) >= WIDE_MIN_ROWS else matrix_session).run
            return _plain(run(wanted, {MATRIX_INPUT: x})[0].reshape(-1))

        return predict_matrix

    def predict_onnx(columns: Columns) -> list[Any]:
        inputs: dict[str, np.ndarray] = {}
        for name, feature, kind in feeds:
            values = columns[feature]
            if kind is object:
                if any(v is None for v in values):
                    return native(columns)
                arr = np.array(values, dtype=object)
            else:
                f = np.asarray(values, dtype=np.float64)
                # a missing value (NaN), or a fraction for an int64 input: the native
                # model answers, as it was trained to
                if np.isnan(f).any() or (kind is np.int64 and not np.all(f == np.floor(f))):
                    return native(columns)
                arr = f.astype(kind, copy=False)
            inputs[name] = arr.reshape(-1, 1)
        return _plain(session.run(wanted, inputs)[0].reshape(-1))

    return predict_onnx


MATRIX_INPUT = "mlteam_matrix"

# From this many rows a request is predicted on several threads. Measured on the 2-vCPU
# machine (GradientBoosting, 30 features, 1,000 rows): 1.94 ms on one thread, 1.31 ms on two
# (2.4 ms of CPU); a single row gains nothing and would pay the threads' wake-up (21 → 59 µs).
WIDE_MIN_ROWS = 256


def _options(ort: Any, threads: int) -> Any:
    """ONNX Runtime session options: `threads` per call (for large requests a thread per core,
    at most 4), and threads that sleep when idle rather than spin, so the small requests
    served beside them keep the CPU."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if threads > 1:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def _one_matrix_input(data: bytes, names: list[str], dtype: Any) -> bytes | None:
    """The graph with its [N, 1] inputs `names` replaced by one [N, len(names)] input split
    into them (a Split node in front, the rest of the graph unchanged), or None if the graph
    does not take that rewrite.

    The contract's graph takes one input per feature; feeding 30 of them cost ONNX Runtime
    ~70 µs a single-row call against ~30 µs for one matrix (its Python binding checks and
    converts each input), and building the 30 views cost ~20 µs more. Split only slices
    columns: the answers are the same numbers.
    """
    import onnx
    from onnx import TensorProto, helper

    try:
        proto = onnx.load_from_string(data)
        graph = proto.graph
        by_name = {i.name: i for i in graph.input}
        if set(by_name) != set(names) or any(
            len(by_name[n].type.tensor_type.shape.dim) != 2
            or by_name[n].type.tensor_type.shape.dim[1].dim_value != 1
            for n in names
        ):
            return None
        opset = max(
            (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0
        )
        elem = TensorProto.FLOAT if dtype is np.float32 else TensorProto.DOUBLE
        for n in names:
            graph.input.remove(by_name[n])
        graph.input.append(helper.make_tensor_value_info(MATRIX_INPUT, elem, [None, len(names)]))
        if opset >= 18:
            split = helper.make_node("Split", [MATRIX_INPUT], names, axis=1, num_outputs=len(names))
        elif opset >= 13:
            sizes = helper.make_tensor(
                "mlteam_split_sizes", TensorProto.INT64, [len(names)], [1] * len(names)
            )
            graph.initializer.append(sizes)
            split = helper.make_node("Split", [MATRIX_INPUT, sizes.name], names, axis=1)
        else:
            split = helper.make_node("Split", [MATRIX_INPUT], names, axis=1, split=[1] * len(names))
        graph.node.insert(0, split)
        return proto.SerializeToString()
    except Exception as err:  # an unusual graph: served through its own inputs
        log.info("ONNX graph kept with one input per feature: %s", err)
        return None


def _read_meta(store: ArtifactStore, artifact_key: str) -> dict[str, Any]:
    try:
        meta = json.loads(store.read_bytes(f"{artifact_key}/mlteam-model.json"))
    except (MlteamError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _sklearn_loader(
    store: ArtifactStore, artifact_key: str, signature: dict[str, Any]
) -> Predictor:
    """ONNX Runtime when the run exported a checked ONNX graph, else native scikit-learn."""
    model = load_sklearn(store.read_bytes(f"{artifact_key}/model.skops"))
    native = _native(model, signature)
    meta = _read_meta(store, artifact_key)
    spec = meta.get("onnx")
    if not isinstance(spec, dict):
        return Predictor(native, "sklearn", meta.get("onnx_note"))
    file = spec.get("file") or "model.onnx"
    try:
        data = store.read_bytes(f"{artifact_key}/{file}")
        onnx = _onnx(data, spec, signature, native)
    except Exception as err:  # missing, corrupt or mismatched: the native model still serves
        note = f"ONNX export not used: {file}: {err}"[:500]
        log.warning("%s (%s)", note, artifact_key)
        return Predictor(native, "sklearn", note)
    return Predictor(onnx, "onnxruntime")


def _rule_loader(store: ArtifactStore, artifact_key: str, signature: dict[str, Any]) -> Predictor:
    """A SQL-rule baseline ("sql-rule"): its expression run by DuckDB over the checked rows
    (`mlteam.core.modelfiles.RuleModel`, the same class training and evaluation use)."""
    from mlteam.core.modelfiles import load_model

    model = load_model(store, artifact_key)
    names = [c["name"] for c in signature.get("inputs", [])] or list(model.features)

    def predict_rule(columns: Columns) -> list[Any]:
        return _plain(model.predict(pd.DataFrame({n: columns[n] for n in names})))

    return Predictor(predict_rule, "duckdb")


# model format → loader(store, artifact key, signature) → Predictor
LOADERS: dict[str, Callable[[ArtifactStore, str, dict[str, Any]], Predictor]] = {
    "sklearn-skops": _sklearn_loader,
    "sql-rule": _rule_loader,
}


@dataclass
class LoadedModel:
    version_id: str
    model: str  # registered model name
    version: int
    fmt: str
    signature: dict[str, Any]
    predict_columns: Callable[[Columns], list[Any]]
    runtime: str = "native"
    runtime_note: str | None = None

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
                p = loader(self.store, artifact_key, signature)
                self._models[version_id] = LoadedModel(
                    version_id, model, version, fmt, signature, p.predict, p.runtime, p.note
                )
                gcpolicy.settle()  # a model lives as long as the process
            return self._models[version_id]


class Checked(dict):
    """Checked columns by name, in signature order. When every column is a number, `matrix`
    holds them once more as one 2-D float64 array (rows by signature columns), which the
    runtimes and the prediction log use as is instead of rebuilding it from the columns."""

    matrix: np.ndarray | None = None


FAST_MIN_ROWS = 16  # below this the per-value check is as fast as numpy's conversion


def _numeric_matrix(rows: list[Any], width: int, no_strings: bool = False) -> np.ndarray | None:
    """`rows` as a 2-D float64 array when every value is a JSON number, else None (the caller
    then checks value by value and names the bad one). numpy converts in C; JSON true/false
    would pass as 1/0, so the few cells equal to 0 or 1 are looked at one by one.

    With `no_strings` (the caller knows no value is a string, and every row has `width`
    values) numpy reads the values straight into float64 without finding their common type
    first: 0.6 instead of 0.9 ms for 1,000 rows of 30. It would read "1.5" as 1.5, hence the
    condition; null becomes NaN, as the value-by-value check makes it too."""
    try:
        if no_strings:
            flat = itertools.chain.from_iterable(rows)
            arr = np.fromiter(flat, np.float64, count=len(rows) * width).reshape(-1, width)
        else:
            arr = np.array(rows)
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.ndim != 2 or arr.shape[1] != width or arr.dtype.kind not in "fi":
        return None
    suspects = np.nonzero((arr == 0) | (arr == 1))
    if any(type(rows[i][j]) is bool for i, j in zip(*suspects, strict=True)):
        return None
    return arr.astype(np.float64, copy=False)


def _from_matrix(arr: np.ndarray, names: list[str]) -> Checked:
    out = Checked({n: arr[:, j] for j, n in enumerate(names)})
    out.matrix = arr
    return out


def _all_numeric(signature: dict[str, Any]) -> bool:
    inputs = signature.get("inputs", [])
    return bool(inputs) and all(c["type"] in ("double", "long") for c in inputs)


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


def _column(values: list[Any], kind: str, field: str) -> Any:
    """One column's values checked (and None made NaN for numbers); errors name row `i`.
    A long all-numbers column comes back as a float64 array (converted in C)."""
    if kind in ("double", "long"):
        if len(values) >= FAST_MIN_ROWS:
            arr = _numeric_matrix([values], len(values))
            if arr is not None:
                return arr[0]
        elif _numbers(values):
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
    if len(records) >= FAST_MIN_ROWS and _all_numeric(signature):
        names = [c["name"] for c in inputs]
        try:
            rows = [[rec[n] for n in names] for rec in records]
        except (KeyError, TypeError):
            rows = None  # the check below names the record at fault
        arr = _numeric_matrix(rows, len(names)) if rows is not None else None
        if arr is not None:
            return _from_matrix(arr, names)
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
    rows: list[list[Any]],
    index: list[int],
    signature: dict[str, Any],
    field: str,
    no_strings: bool = False,
) -> Columns:
    """Columns from rows whose value for signature column j sits at `index[j]`."""
    if _all_numeric(signature):
        arr = _numeric_matrix(rows, len(rows[0]), no_strings)
        if arr is not None:
            if index != list(range(arr.shape[1])):
                arr = arr[:, index]  # signature order (a copy, contiguous)
            return _from_matrix(arr, [c["name"] for c in signature["inputs"]])
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
    names: list[str],
    rows: Any,
    signature: dict[str, Any],
    field: str = "data",
    no_strings: bool = False,
) -> Columns:
    """Validate rows of values under column `names` (MLflow's dataframe_split); `no_strings`:
    the caller knows no value is a string."""
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
    return _rows_to_columns(rows, index, signature, field, no_strings)


def check_matrix(
    names: list[str], matrix: np.ndarray, signature: dict[str, Any], field: str = "data"
) -> Columns | None:
    """Validate a float64 matrix read under column `names` (every value already a number);
    None when the signature has a column that is not a number (the caller checks value by
    value then)."""
    if not _all_numeric(signature):
        return None
    _check_rows(len(matrix), field)
    position = {n: j for j, n in enumerate(names)}
    index = []
    for col in signature["inputs"]:
        if col["name"] not in position:
            raise InvalidInput(
                f"{field}: missing column {col['name']!r}", {"field": f"{field}.{col['name']}"}
            )
        index.append(position[col["name"]])
    if index != list(range(matrix.shape[1])):
        matrix = matrix[:, index]  # signature order (a copy, contiguous)
    return _from_matrix(matrix, [c["name"] for c in signature["inputs"]])


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
    if n >= FAST_MIN_ROWS and all(isinstance(v, np.ndarray) for v in out.values()):
        return _from_matrix(np.column_stack(list(out.values())), list(out))
    return out
