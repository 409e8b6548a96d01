"""Model files in safe formats only.

scikit-learn models are saved with skops and loaded back only when every type in the file is
on the allow-list: loading a model never runs arbitrary code (pickle would). A SQL-rule
baseline ("sql-rule") is just an expression in `mlteam-model.json`, run by DuckDB.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from mlteam.core.errors import InvalidInput

# Types a file may hold beyond skops' own trusted set (scikit-learn's estimators, numpy
# arrays, plain containers): the fitted parts of the model families people train. Named one by
# one: a prefix such as "builtins." or "numpy." would also let through functions like
# `builtins.exec` or `numpy.load`, which a FunctionTransformer would then call on every
# prediction. The tree types are native structures skops cannot vouch for; the platform's own
# recipes train them, so they are taken.
TRUSTED_TYPES = frozenset(
    {
        "collections.OrderedDict",
        "numpy.dtype",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.sklearn.LGBMRanker",
    }
)


def dump_sklearn(model: Any, path: str) -> None:
    import skops.io as sio  # here, not at the top: importing skops costs ~3.5 s (see below)

    sio.dump(model, path)


def load_sklearn(data: bytes) -> Any:
    # skops walks all of scikit-learn on import (~3.5 s of a server's start here); a server
    # pays it at its first model load, not at every start and in every worker.
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=data)
    unsafe = [t for t in untrusted if t not in TRUSTED_TYPES]
    if unsafe:
        raise InvalidInput(
            f"model file holds types outside the allow-list: {', '.join(sorted(unsafe)[:5])}",
            {"types": sorted(unsafe)},
        )
    return sio.loads(data, trusted=untrusted)


def _rule_connection() -> Any:
    """A DuckDB connection that can read nothing but the frame it is given."""
    import duckdb

    con = duckdb.connect(config={"enable_external_access": False})
    return con


class RuleModel:
    """A baseline the team writes as a DuckDB SQL expression over the feature columns.

    It behaves like a fitted scikit-learn estimator (`predict`, and for classification
    `predict_proba` as a one-hot of the predicted class plus `classes_`) so every consumer
    (evaluation, serving, the training job) treats it like any other model.
    """

    def __init__(
        self,
        expression: str,
        features: list[str],
        task: str,
        classes: list[Any] | None = None,
    ) -> None:
        self.expression = expression
        self.features = list(features)
        self.task = task
        self.classes_ = np.asarray(classes) if classes is not None else None

    def fit(self, X: Any = None, y: Any = None) -> RuleModel:  # noqa: ARG002 - sklearn shape
        """A rule learns nothing; present so it fits wherever an estimator does."""
        return self

    def _frame(self, X: Any) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            return X[[f for f in self.features if f in X.columns]].reset_index(drop=True)
        return pd.DataFrame(np.asarray(X), columns=self.features)

    def predict(self, X: Any) -> np.ndarray:
        frame = self._frame(X)
        con = _rule_connection()
        try:
            con.register("rule_input", frame)
            out = con.execute(f"SELECT ({self.expression}) AS p FROM rule_input").fetchnumpy()["p"]
        finally:
            con.close()
        values = np.asarray(out)
        if hasattr(out, "mask"):  # masked array: NULL results
            values = np.asarray(out.filled(np.nan) if values.dtype.kind == "f" else out.data)
        if self.task == "regression":
            return values.astype(float)
        if self.classes_ is not None and len(self.classes_):
            # Cast the rule's answers to the classes' type ("1" vs 1 must compare equal).
            kind = self.classes_.dtype.kind
            try:
                if kind in "iub":
                    values = values.astype(self.classes_.dtype)
                elif kind == "f":
                    values = values.astype(float)
                else:
                    values = values.astype(str).astype(object)
            except (TypeError, ValueError):
                pass
        return values

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.task == "regression" or self.classes_ is None:
            raise AttributeError("predict_proba is only for classification rules")
        pred = self.predict(X)
        out = np.zeros((len(pred), len(self.classes_)), dtype=float)
        for j, c in enumerate(self.classes_):
            out[:, j] = pred == c
        return out

    def meta(self) -> dict[str, Any]:
        return {"format": "sql-rule", "expression": self.expression}


def check_rule(expression: str, columns: dict[str, str]) -> None:
    """Parse and bind a rule against a schema (column name → DuckDB type) without data.

    Raises InvalidInput naming DuckDB's complaint, so a bad rule is a 4xx at submission.
    """
    import duckdb

    if not expression or not expression.strip():
        raise InvalidInput("baseline_rule is empty", {"field": "baseline_rule"})
    if ";" in expression:
        raise InvalidInput(
            "baseline_rule must be one SQL expression (no ';')", {"field": "baseline_rule"}
        )
    cols = ", ".join(f"CAST(NULL AS {t}) AS {_q(n)}" for n, t in columns.items()) or "1 AS x"
    con = _rule_connection()
    try:
        con.execute(f"SELECT ({expression}) AS p FROM (SELECT {cols}) LIMIT 0").fetchall()
    except duckdb.Error as err:
        raise InvalidInput(
            f"baseline_rule does not parse against the dataset's columns: {err}",
            {"field": "baseline_rule"},
        ) from err
    finally:
        con.close()


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def load_model(store: Any, artifact_key: str) -> Any:
    """Load the model in a model dir (`<key>/mlteam-model.json` says which format)."""
    meta = json.loads(store.read_bytes(f"{artifact_key}/mlteam-model.json"))
    fmt = meta.get("format")
    if fmt == "sql-rule":
        sig = meta.get("signature") or {}
        features = [i["name"] for i in sig.get("inputs", [])]
        return RuleModel(
            meta["expression"],
            features,
            sig.get("task", "classification"),
            (sig.get("output") or {}).get("classes"),
        )
    if fmt in ("sklearn-skops", None):
        return load_sklearn(store.read_bytes(f"{artifact_key}/model.skops"))
    raise InvalidInput(f"unknown model format {fmt!r}", {"format": fmt})
