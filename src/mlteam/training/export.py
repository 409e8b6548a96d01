"""ONNX export of a fitted candidate, kept only when it answers like the native model.

The graph has one input per feature (shape [None, 1]): double for numerics where the
converters support it (so no float32 rounding), int64/string otherwise; outputs are the label
then the probabilities as a plain [N, n_classes] tensor (zipmap off). LightGBM goes through
onnxmltools' converter registered with skl2onnx; its trees are float32, so a LightGBM
pipeline is exported with float inputs. After conversion the graph runs in ONNX Runtime on
the validation rows and must give the same labels and probabilities (or regression values)
within 1e-5; otherwise no model.onnx is written and the reason is recorded.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

TOLERANCE = 1e-5
_registered = False
_imputer_registered = False


def _register_lightgbm() -> None:
    global _registered
    if _registered:
        return
    from lightgbm import LGBMClassifier, LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
    )
    _registered = True


def _register_double_imputer() -> None:
    """ONNX Runtime's ai.onnx.ml Imputer is float-only: impute doubles with standard ops
    (Where(IsNaN(x), statistics, x)), which run in any precision; other cases keep
    skl2onnx's own converter."""
    global _imputer_registered
    if _imputer_registered:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import guess_numpy_type
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from sklearn.impute import SimpleImputer

    def convert(scope: Any, operator: Any, container: Any) -> None:
        op = operator.raw_operator
        dtype = guess_numpy_type(operator.inputs[0].type)
        missing = op.missing_values
        nan_missing = isinstance(missing, float) and np.isnan(missing)
        if dtype != np.float64 or len(operator.inputs) != 1 or not nan_missing:
            convert_sklearn_imputer(scope, operator, container)
            return
        from onnx import TensorProto

        stats = np.asarray(op.statistics_, dtype=np.float64).reshape(1, -1)
        stats_name = scope.get_unique_variable_name("impute_values")
        container.add_initializer(
            stats_name, TensorProto.DOUBLE, list(stats.shape), stats.ravel().tolist()
        )
        isnan = scope.get_unique_variable_name("isnan")
        container.add_node(
            "IsNaN",
            [operator.inputs[0].full_name],
            isnan,
            name=scope.get_unique_operator_name("IsNaN"),
        )
        container.add_node(
            "Where",
            [isnan, stats_name, operator.inputs[0].full_name],
            operator.outputs[0].full_name,
            name=scope.get_unique_operator_name("Where"),
        )

    update_registered_converter(
        SimpleImputer, "SklearnSimpleImputer", calculate_sklearn_imputer_output_shapes, convert
    )
    _imputer_registered = True


def _input_name(i: int, feature: str) -> str:
    """ONNX-safe input names; the meta maps each back to its feature column."""
    return f"in{i}_" + re.sub(r"[^A-Za-z0-9_]", "_", feature)[:40]


def _kind(s: pd.Series, numeric: str) -> str:
    if pd.api.types.is_bool_dtype(s):
        return "string"
    if pd.api.types.is_numeric_dtype(s):
        return numeric
    return "string"


def feeds(frame: pd.DataFrame, inputs: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """ONNX Runtime inputs for a frame, per the meta's input list."""
    out: dict[str, np.ndarray] = {}
    for i in inputs:
        col = frame[i["feature"]]
        if i["type"] == "string":
            vals = col.astype(object).where(col.notna(), "").astype(str)
            out[i["name"]] = vals.to_numpy(dtype=object).reshape(-1, 1)
        else:
            dtype = {"double": np.float64, "float": np.float32, "int64": np.int64}[i["type"]]
            out[i["name"]] = col.to_numpy(dtype=dtype, na_value=np.nan).reshape(-1, 1)
    return out


def _convert(
    model: Any, frame: pd.DataFrame, features: list[str], numeric: str
) -> tuple[bytes, list[dict[str, str]], dict[str, Any]]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType

    types = {"double": DoubleTensorType, "float": FloatTensorType, "string": StringTensorType}
    inputs = [
        {"name": _input_name(i, f), "feature": f, "type": _kind(frame[f], numeric)}
        for i, f in enumerate(features)
    ]
    initial = [(i["name"], types[i["type"]]([None, 1])) for i in inputs]
    # The ColumnTransformer selects columns by name: rename its column lists to input names.
    model = _rename_columns(model, {i["feature"]: i["name"] for i in inputs})
    est = model.steps[-1][1]
    options = {id(est): {"zipmap": False}} if hasattr(est, "classes_") else None
    onx = convert_sklearn(
        model, initial_types=initial, options=options, target_opset={"": 17, "ai.onnx.ml": 3}
    )
    outs = [o.name for o in onx.graph.output]
    outputs = {"label": outs[0], "probabilities": outs[1] if len(outs) > 1 else None}
    return onx.SerializeToString(), inputs, outputs


def _rename_columns(model: Any, names: dict[str, str]) -> Any:
    import copy

    model = copy.deepcopy(model)
    pre = model.steps[0][1]
    pre.transformers_ = [
        (n, t, [names.get(c, c) for c in cols] if isinstance(cols, list) else cols)
        for n, t, cols in pre.transformers_
    ]
    pre.transformers = [
        (n, t, [names.get(c, c) for c in cols] if isinstance(cols, list) else cols)
        for n, t, cols in pre.transformers
    ]
    if hasattr(pre, "feature_names_in_"):
        pre.feature_names_in_ = np.array(
            [names.get(c, c) for c in pre.feature_names_in_], dtype=object
        )
    return model


def _check(
    model: Any,
    graph: bytes,
    inputs: list[dict[str, str]],
    outputs: dict[str, Any],
    frame: pd.DataFrame,
    features: list[str],
    task: str,
) -> tuple[bool, float, str]:
    import onnxruntime as ort

    sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds(frame, inputs))
    X = frame[features]
    if task == "regression":
        native = np.asarray(model.predict(X), dtype=float).ravel()
        onnx_vals = np.asarray(got[0], dtype=float).ravel()
        diff = float(np.max(np.abs(native - onnx_vals))) if len(native) else 0.0
        return diff <= TOLERANCE, diff, "regression values"
    labels = np.asarray(got[0]).ravel()
    native_labels = np.asarray(model.predict(X)).ravel()
    if labels.dtype.kind in "OUS" or native_labels.dtype.kind in "OUS":
        same = bool((labels.astype(str) == native_labels.astype(str)).all())
    else:
        same = bool((labels == native_labels).all())
    proba = np.asarray(got[1], dtype=float)
    native_proba = np.asarray(model.predict_proba(X), dtype=float)
    diff = float(np.max(np.abs(proba - native_proba))) if len(proba) else 0.0
    if not same:
        return False, diff, "labels differ"
    return diff <= TOLERANCE, diff, "probabilities"


def export(
    model: Any, family: str, task: str, validation: pd.DataFrame, features: list[str]
) -> tuple[bytes | None, dict[str, Any]]:
    """(graph or None, meta entries): `{"onnx": {...}}` or `{"onnx": None, "onnx_note": why}`."""
    rows = len(validation)
    if rows == 0:
        return None, {"onnx": None, "onnx_note": "no validation rows to check an export against"}
    if family == "baseline":
        return None, {"onnx": None, "onnx_note": "baselines are not exported to ONNX"}
    if family == "lightgbm":
        _register_lightgbm()
    _register_double_imputer()
    tried: list[str] = []
    for numeric in ("double", "float"):
        try:
            graph, inputs, outputs = _convert(model, validation, features, numeric)
        except Exception as err:  # noqa: BLE001 - converters raise anything; record why
            tried.append(
                f"{numeric} inputs: conversion failed ({type(err).__name__}: {str(err)[:200]})"
            )
            continue
        try:
            ok, diff, what = _check(model, graph, inputs, outputs, validation, features, task)
        except Exception as err:  # noqa: BLE001 - a graph ONNX Runtime refuses is not kept
            tried.append(
                f"{numeric} inputs: ONNX Runtime failed ({type(err).__name__}: {str(err)[:200]})"
            )
            continue
        if ok:
            meta = {
                "file": "model.onnx",
                "max_abs_diff": diff,
                "rows_checked": rows,
                "inputs": inputs,
                "outputs": outputs,
            }
            out: dict[str, Any] = {"onnx": meta}
            if tried:
                out["onnx_note"] = "; ".join(tried)
            return graph, out
        tried.append(
            f"{numeric} inputs: {what} differ from the native model on the validation rows "
            f"(max abs diff {diff:.3g} > {TOLERANCE:g})"
            + (" - float32 precision" if numeric == "float" else "")
            if what != "labels differ"
            else f"{numeric} inputs: labels differ from the native model on the validation rows"
        )
    return None, {"onnx": None, "onnx_note": "not exported: " + "; ".join(tried)}
