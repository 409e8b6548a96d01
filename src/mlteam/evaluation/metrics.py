"""Metrics as functions of a row-weight matrix, so one code path gives the point value,
every bootstrap resample and every slice.

A weight matrix ``W`` has one row per "view" of the test set and one column per test row:
all ones is the plain metric, a bootstrap resample is how often each row was drawn, a slice is
its 0/1 membership. Each metric reduces to a few ``W @ vector`` products (or a sort shared by
all views for the ranking metrics), so 200 resamples of 10,000 rows cost milliseconds instead
of 200 calls into scikit-learn. The point values equal scikit-learn's (the tests check that).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

# The primary metric of a task: what robustness is measured in, what slices are ranked by.
# Classification uses ROC AUC (binary: of the positive class = classes_[1]; multiclass: macro
# one-vs-rest) because it does not depend on a decision threshold or on class balance.
PRIMARY: dict[str, str] = {"classification": "roc_auc", "regression": "rmse"}

HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "ece": False,
    "mae": False,
    "rmse": False,
    "r2": True,
    "mape": False,
}

CLASSIFICATION_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "ece",
)
REGRESSION_METRICS = ("mae", "rmse", "r2", "mape")
# Expected calibration error: 10 equal-width probability bins; binary on the positive class's
# probability (as the calibration curve), multiclass on the top-label confidence.
ECE_BINS = 10
_EPS = np.finfo(np.float64).eps


@dataclass
class Predictions:
    """One model's predictions on the test rows, in a shared label space.

    Classification: ``y`` and ``pred`` are indices into ``labels``; ``proba`` is (n, K).
    Regression: ``y`` and ``pred`` are floats; ``labels`` is empty and ``proba`` None.
    """

    task: str
    labels: list[Any]
    y: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None

    @property
    def binary(self) -> bool:
        return self.task == "classification" and len(self.labels) == 2

    @property
    def names(self) -> tuple[str, ...]:
        return CLASSIFICATION_METRICS if self.task == "classification" else REGRESSION_METRICS


def label_key(v: Any) -> str:
    """How labels are matched: as text, with 1.0 read as 1 (a target column holding NaN comes
    back as floats while the model learnt ints) and numpy scalars as Python ones."""
    v = _py(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def label_space(y: pd.Series, models: Sequence[Any], predicted: Sequence[Any] = ()) -> list[Any]:
    """The labels every model and the truth share: the first model's classes_ first (so the
    binary positive class stays classes_[1]), then any others (seen in the truth or in a
    prediction) in a stable order."""
    labels: list[Any] = []
    seen: set[str] = set()
    for m in models:
        for c in getattr(m, "classes_", []):
            if label_key(c) not in seen:
                seen.add(label_key(c))
                labels.append(_py(c))
    extra: dict[str, Any] = {}
    for v in [*pd.unique(y.dropna()), *predicted]:
        if label_key(v) not in seen:
            extra.setdefault(label_key(v), _py(v))
    labels.extend(extra[k] for k in sorted(extra))
    return labels


def to_index(values: Any, labels: Sequence[Any]) -> np.ndarray:
    """Label values → indices into ``labels`` (matched by ``label_key``); -1 for a value
    outside the label space or missing."""
    lookup = {label_key(v): i for i, v in enumerate(labels)}
    codes, uniques = pd.factorize(pd.Series(np.asarray(values, dtype=object)), use_na_sentinel=True)
    mapped = np.array([lookup.get(label_key(u), -1) for u in uniques] + [-1], dtype=np.int64)
    return mapped[codes]


def proba_matrix(
    model: Any, proba: np.ndarray | None, pred_idx: np.ndarray, labels: Sequence[Any]
) -> np.ndarray:
    """Probabilities with one column per label of the shared space (zeros for labels the model
    never predicts); a model without predict_proba gets the one-hot of its predictions."""
    n, k = len(pred_idx), len(labels)
    out = np.zeros((n, k), dtype=np.float64)
    if proba is None:
        ok = pred_idx >= 0
        out[np.flatnonzero(ok), pred_idx[ok]] = 1.0
        return out
    proba = np.asarray(proba, dtype=np.float64)
    cols = to_index(list(getattr(model, "classes_", labels)), labels)
    for j, c in enumerate(cols):
        if c >= 0 and j < proba.shape[1]:
            out[:, c] = proba[:, j]
    return out


def compute(
    p: Predictions, W: np.ndarray, names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Every metric in ``names`` (default: all of the task) for each row of ``W``.

    Undefined values (an AUC with one class present, an empty slice) are NaN.
    """
    names = tuple(names or p.names)
    W = np.asarray(W, dtype=np.float64)
    total = W.sum(axis=1)
    out: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        if p.task == "regression":
            _regression(p, W, total, names, out)
        else:
            _classification(p, W, total, names, out)
    empty = total <= 0
    for v in out.values():
        v[empty] = np.nan
    return {n: out[n] for n in names if n in out}


def _regression(
    p: Predictions, W: np.ndarray, total: np.ndarray, names: Sequence[str], out: dict
) -> None:
    y = p.y.astype(np.float64)
    err = p.pred.astype(np.float64) - y
    if "mae" in names:
        out["mae"] = W @ np.abs(err) / total
    if "rmse" in names:
        out["rmse"] = np.sqrt(W @ (err * err) / total)
    if "r2" in names:
        sse = W @ (err * err)
        sy = W @ y
        sst = W @ (y * y) - sy * sy / total
        # sklearn: a constant truth gives 1.0 for a perfect fit, 0.0 otherwise
        r2 = 1.0 - sse / sst
        const = sst <= 1e-12 * np.maximum(1.0, W @ (y * y))
        r2[const] = np.where(sse[const] <= 1e-12, 1.0, 0.0)
        out["r2"] = r2
    if "mape" in names:
        out["mape"] = W @ (np.abs(err) / np.maximum(np.abs(y), _EPS)) / total


def _classification(
    p: Predictions, W: np.ndarray, total: np.ndarray, names: Sequence[str], out: dict
) -> None:
    k = len(p.labels)
    y, pred = p.y, p.pred
    need_counts = {"accuracy", "balanced_accuracy", "precision", "recall", "f1"} & set(names)
    if need_counts and k > 0:
        C = confusion_counts(y, pred, k, W)
        tp = np.diagonal(C, axis1=1, axis2=2)
        true_n = C.sum(axis=2)
        pred_n = C.sum(axis=1)
        fn, fp = true_n - tp, pred_n - tp
        recall_k = np.where(true_n > 0, tp / true_n, 0.0)
        precision_k = np.where(pred_n > 0, tp / pred_n, 0.0)
        f1_den = 2 * tp + fp + fn
        f1_k = np.where(f1_den > 0, 2 * tp / f1_den, 0.0)
        out["accuracy"] = tp.sum(axis=1) / total
        present = true_n > 0
        out["balanced_accuracy"] = np.where(
            present.any(axis=1),
            np.where(present, recall_k, 0.0).sum(axis=1) / np.maximum(present.sum(axis=1), 1),
            np.nan,
        )
        if p.binary:
            out["precision"], out["recall"], out["f1"] = (
                precision_k[:, 1],
                recall_k[:, 1],
                f1_k[:, 1],
            )
        else:
            # sklearn's macro average runs over the labels seen in truth or prediction
            seen = (true_n + pred_n) > 0
            count = np.maximum(seen.sum(axis=1), 1)
            for name, per in (("precision", precision_k), ("recall", recall_k), ("f1", f1_k)):
                out[name] = np.where(seen, per, 0.0).sum(axis=1) / count
    proba = p.proba
    if proba is None or k == 0:
        return
    if "roc_auc" in names or "pr_auc" in names:
        classes = [1] if p.binary else range(k)
        aucs, aps = [], []
        for c in classes:
            auc, ap = RankedScores(proba[:, c], y == c).scores(W)
            aucs.append(auc)
            aps.append(ap)
        out["roc_auc"] = _nanmean_rows(np.vstack(aucs))
        out["pr_auc"] = _nanmean_rows(np.vstack(aps))
    if "log_loss" in names:
        q = np.clip(proba, _EPS, 1 - _EPS)
        q = q / q.sum(axis=1, keepdims=True)
        ok = y >= 0
        picked = np.full(len(y), _EPS)
        picked[ok] = q[np.flatnonzero(ok), y[ok]]
        out["log_loss"] = W @ (-np.log(picked)) / total
    if "ece" in names:
        if p.binary:
            conf, hit = proba[:, 1], (y == 1).astype(np.float64)
        else:
            conf, hit = proba.max(axis=1), (pred == y).astype(np.float64)
        bins = np.minimum((conf * ECE_BINS).astype(np.int64), ECE_BINS - 1)
        onehot = np.zeros((len(conf), ECE_BINS))
        onehot[np.arange(len(conf)), bins] = 1.0
        gap = W @ (onehot * conf[:, None]) - W @ (onehot * hit[:, None])
        out["ece"] = np.abs(gap).sum(axis=1) / total


def _nanmean_rows(a: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(a)
    cnt = ok.sum(axis=0)
    return np.where(cnt > 0, np.where(ok, a, 0.0).sum(axis=0) / np.maximum(cnt, 1), np.nan)


def confusion_counts(y: np.ndarray, pred: np.ndarray, k: int, W: np.ndarray) -> np.ndarray:
    """(views, K, K) weighted confusion counts, truth on axis 1. Rows whose truth or prediction
    lies outside the label space count towards neither."""
    ok = (y >= 0) & (pred >= 0)
    cells = np.where(ok, y * k + pred, 0)
    if k * k <= 64:  # few classes: a dense one-hot and one BLAS product
        onehot = np.zeros((len(y), k * k))
        onehot[np.arange(len(y)), cells] = ok
        return (W @ onehot).reshape(W.shape[0], k, k)
    S = sparse.csr_matrix(
        (ok.astype(np.float64), (np.arange(len(y)), cells)), shape=(len(y), k * k)
    )
    return np.asarray((S.T @ W.T).T).reshape(W.shape[0], k, k)


class RankedScores:
    """Scores sorted once; ROC AUC and average precision for any weight matrix, ties handled
    as scikit-learn does (a tie counts half for AUC; AP steps at each distinct score).

    Positives and negatives are sorted apart and each positive's place among the negatives
    (and among the positives) is looked up once, so a view costs two running sums and a few
    gathers — no per-view sort, nothing per distinct score.
    """

    def __init__(self, score: np.ndarray, positive: np.ndarray) -> None:
        score = np.asarray(score, dtype=np.float64)
        pos_idx, neg_idx = np.flatnonzero(positive), np.flatnonzero(~positive)
        po = np.argsort(score[pos_idx], kind="mergesort")
        no = np.argsort(score[neg_idx], kind="mergesort")
        self.pos_cols, self.neg_cols = pos_idx[po], neg_idx[no]
        sp, sn = score[self.pos_cols], score[self.neg_cols]
        # for each positive (ascending): negatives strictly below / at or below its score,
        # and positives strictly below it
        self.n_lo = np.searchsorted(sn, sp, side="left")
        self.n_hi = np.searchsorted(sn, sp, side="right")
        self.p_lo = np.searchsorted(sp, sp, side="left")

    def scores(self, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(roc_auc, average_precision) per row of ``W``; NaN where a class is absent."""
        m = W.shape[0]
        Wp = W[:, self.pos_cols]
        CN = np.zeros((m, len(self.neg_cols) + 1))
        np.cumsum(W[:, self.neg_cols], axis=1, out=CN[:, 1:])
        CP = np.zeros((m, len(self.pos_cols) + 1))
        np.cumsum(Wp, axis=1, out=CP[:, 1:])
        P, N = CP[:, -1], CN[:, -1]
        below = CN[:, self.n_lo]
        auc_num = 0.5 * (Wp * (below + CN[:, self.n_hi])).sum(axis=1)
        ok = (P > 0) & (N > 0)
        auc = auc_num / np.where(ok, P * N, 1.0)
        # precision at the threshold of each positive: weight at or above its score
        tp = P[:, None] - CP[:, self.p_lo]
        seen = tp + (N[:, None] - below)
        prec = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
        ap = (Wp * prec).sum(axis=1) / np.where(P > 0, P, 1.0)
        return np.where(ok, auc, np.nan), np.where(P > 0, ap, np.nan)


def bootstrap_weights(
    n: int, resamples: int, seed: int, chunk_cells: int = 4_000_000
) -> Iterator[np.ndarray]:
    """Bootstrap resamples as draw counts per row, yielded in chunks to bound memory
    (``chunk_cells`` floats per chunk). The same seed gives the same resamples, so every model
    evaluated with it is compared on identical resamples (a paired bootstrap)."""
    rng = np.random.default_rng(seed)
    per_chunk = max(1, min(resamples, chunk_cells // max(n, 1)))
    done = 0
    while done < resamples:
        m = min(per_chunk, resamples - done)
        W = np.empty((m, n), dtype=np.float64)
        for b in range(m):
            W[b] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        yield W
        done += m


def interval(samples: np.ndarray) -> tuple[float | None, float | None]:
    """95% percentile interval of bootstrap values, ignoring undefined resamples."""
    s = np.asarray(samples, dtype=np.float64)
    s = s[~np.isnan(s)]
    if s.size == 0:
        return None, None
    lo, hi = np.percentile(s, [2.5, 97.5])
    return float(lo), float(hi)


def worse_by(name: str, base: float | None, value: float | None) -> float | None:
    """How much worse ``value`` is than ``base`` in the metric's own direction (positive = worse)."""
    if base is None or value is None:
        return None
    return float(base - value) if HIGHER_IS_BETTER.get(name, True) else float(value - base)


def confusion_matrix(p: Predictions) -> dict[str, Any] | None:
    if p.task != "classification":
        return None
    k = len(p.labels)
    C = confusion_counts(p.y, p.pred, k, np.ones((1, len(p.y))))[0]
    return {"labels": [_py(v) for v in p.labels], "matrix": np.rint(C).astype(int).tolist()}


def curves(p: Predictions, max_points: int = 200) -> dict[str, Any]:
    """ROC, precision-recall and calibration curves of the positive class (binary only;
    multiclass and regression get None — one plot per class would bury the page)."""
    none: dict[str, Any] = {"roc": None, "pr": None, "calibration": None}
    if not p.binary or p.proba is None:
        return none
    from sklearn.metrics import precision_recall_curve, roc_curve

    y = (p.y == 1).astype(int)
    if y.min() == y.max():
        return none
    s = p.proba[:, 1]
    fpr, tpr, _ = roc_curve(y, s)
    prec, rec, _ = precision_recall_curve(y, s)
    keep = _thin(len(fpr), max_points)
    keep_pr = _thin(len(prec), max_points)
    bins = np.minimum((s * ECE_BINS).astype(int), ECE_BINS - 1)
    cnt = np.bincount(bins, minlength=ECE_BINS)
    used = cnt > 0
    mean_pred = np.bincount(bins, weights=s, minlength=ECE_BINS)[used] / cnt[used]
    frac_pos = np.bincount(bins, weights=y, minlength=ECE_BINS)[used] / cnt[used]
    return {
        "roc": {"fpr": _floats(fpr[keep]), "tpr": _floats(tpr[keep])},
        "pr": {"precision": _floats(prec[keep_pr]), "recall": _floats(rec[keep_pr])},
        "calibration": {
            "mean_predicted": _floats(mean_pred),
            "fraction_positive": _floats(frac_pos),
        },
    }


def _thin(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def _floats(a: np.ndarray) -> list[float]:
    return [float(x) for x in a]


def _py(v: Any) -> Any:
    """numpy scalars → Python ones, so labels survive json.dumps."""
    return v.item() if isinstance(v, np.generic) else v


def number(x: Any) -> float | None:
    """A float for JSON: NaN and infinities become None."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None
